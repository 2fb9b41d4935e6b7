//! Kernel programs of the tracer: count drops, retransmits, softirq time and per-destination
//! flow events into maps, nothing more. Offsets come from the loader (`CONFIG`); names, layers
//! and meaning are decided in user space.
//!
//! One module per probe family, each owning its programs and maps; what several families need
//! lives in `shared`. Dependencies point one way: a family uses `shared`, never another family;
//! `shared` uses no family.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod shared;

mod capture;
mod destinations;
mod drops;
mod resets;
mod retransmits;
mod softirq;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
