#![allow(clippy::unwrap_used)]
use super::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

/// Splits a file into (type, body) blocks, checking both length fields of each.
fn blocks(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let (kind, len) = (u32_at(file, at), u32_at(file, at + 4) as usize);
        assert_eq!(len % 4, 0, "block length is a multiple of 4");
        assert_eq!(u32_at(file, at + len - 4) as usize, len, "trailing length");
        out.push((kind, file[at + 8..at + len - 4].to_vec()));
        at += len;
    }
    assert_eq!(at, file.len());
    out
}

/// Options of a block body from `at`: (code, value).
fn options(body: &[u8], mut at: usize) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let (code, len) = (u16_at(body, at), u16_at(body, at + 2) as usize);
        if code == 0 {
            assert_eq!(len, 0);
            assert_eq!(at + 4, body.len(), "end-of-options closes the block");
            return out;
        }
        out.push((code, body[at + 4..at + 4 + len].to_vec()));
        at += 4 + len.div_ceil(4) * 4;
    }
}

#[test]
fn section_interfaces_and_packets_read_back_exactly() {
    let mut w = PcapngWriter::new(Vec::new(), 128, 1 << 20).unwrap();
    let packet = [0x45u8, 0, 0, 29, 1, 2, 3];
    assert!(w
        .packet(
            7,
            2,
            "veth-a",
            0x1_0000_0005,
            &packet,
            29,
            "reason=NETFILTER_DROP"
        )
        .unwrap());
    assert!(w.packet(7, 2, "veth-a", 6, &packet[..4], 29, "x").unwrap());
    assert!(w.packet(8, 2, "eth0", 7, &packet, 29, "").unwrap());
    assert_eq!(w.interface_count(), 2);
    let written = w.written();
    let file = w.finish().unwrap();
    assert_eq!(file.len() as u64, written);
    let b = blocks(&file);
    let kinds: Vec<u32> = b.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, vec![SHB, IDB, EPB, EPB, IDB, EPB]);

    let shb = &b[0].1;
    assert_eq!(u32_at(shb, 0), BYTE_ORDER_MAGIC);
    assert_eq!((u16_at(shb, 4), u16_at(shb, 6)), (1, 0));
    assert_eq!(&shb[8..16], &[0xff; 8], "section length unspecified");
    let shb_opts = options(shb, 16);
    assert_eq!(shb_opts[0].0, 4);
    assert!(shb_opts[0].1.starts_with(b"tracer "));

    let idb = &b[1].1;
    assert_eq!(u16_at(idb, 0), LINKTYPE_RAW);
    assert_eq!(u32_at(idb, 4), 128);
    assert_eq!(
        options(idb, 8),
        vec![(2, b"veth-a".to_vec()), (9, vec![9])],
        "name and nanosecond resolution"
    );
    assert_eq!(options(&b[4].1, 8)[0], (2, b"eth0".to_vec()));

    let epb = &b[2].1;
    assert_eq!(u32_at(epb, 0), 0, "first interface");
    assert_eq!(
        (u32_at(epb, 4), u32_at(epb, 8)),
        (1, 5),
        "timestamp high, low"
    );
    assert_eq!((u32_at(epb, 12), u32_at(epb, 16)), (7, 29));
    assert_eq!(&epb[20..27], &packet);
    assert_eq!(&epb[27..28], &[0], "data padded to 4");
    assert_eq!(
        options(epb, 28),
        vec![(1, b"reason=NETFILTER_DROP".to_vec())]
    );
    // Exact size: 12 + 20 + 8 (7 bytes padded) + 4 + 24 (21 padded) + 4.
    assert_eq!(b[2].1.len() + 12, 12 + 20 + 8 + 4 + 24 + 4);
    assert_eq!(u32_at(&b[3].1, 12), 4, "captured length of the cut packet");
    assert_eq!(u32_at(&b[5].1, 0), 1, "second interface");
    assert!(
        options(&b[5].1, 28).is_empty(),
        "no comment option for an empty comment"
    );
}

#[test]
fn the_byte_limit_holds() {
    let mut w = PcapngWriter::new(Vec::new(), 128, 400).unwrap();
    let packet = [0x45u8; 100];
    let mut kept = 0;
    for i in 0..10 {
        if w.packet(1, 1, "lo", i, &packet, 100, "c").unwrap() {
            kept += 1;
        }
    }
    let file = w.finish().unwrap();
    assert!(file.len() <= 400, "{} bytes", file.len());
    assert_eq!(kept, 2);
    assert_eq!(blocks(&file).len(), 1 + 1 + 2);
}
