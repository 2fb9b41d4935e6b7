//! Rendering and key-handling tests on ratatui's `TestBackend`, from hand-built dashboards.
//! No terminal, no threads: the app is driven through `App::handle` as the runner would.

use std::collections::BTreeMap;

use ratatui::{
    backend::TestBackend,
    buffer::Buffer,
    crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
    style::Color,
    Terminal,
};

use super::{
    render, save_dirs, write_in_first_writable, write_new_file, App, Command, Drill, Event, Pane,
};
use crate::{
    judge::layers::Layer,
    present::dashboard::{CounterRow, Dashboard, DestRow, DropRow, FlowRow},
};

fn drop_row(
    reason: &str,
    location: &str,
    layer: Option<Layer>,
    ns: &[&str],
    count: u64,
) -> DropRow {
    DropRow {
        reason: reason.to_owned(),
        location: location.to_owned(),
        class: layer.map_or_else(
            || "noise: duplicate segment".to_owned(),
            |l| l.title().to_owned(),
        ),
        layer,
        namespaces: ns.iter().map(|s| (*s).to_owned()).collect(),
        count,
        per_second: count as f64 / 10.0,
    }
}

fn flow_row(namespace: &str, source: &str, destination: &str, segments: u64) -> FlowRow {
    FlowRow {
        namespace: namespace.to_owned(),
        source: source.to_owned(),
        destination: destination.to_owned(),
        state: "ESTABLISHED".to_owned(),
        retransmitted_segments: segments,
        per_second: segments as f64 / 10.0,
    }
}

/// A security_rule_drops verdict: an nftables rule in pod-a drops traffic to 198.18.1.2.
fn degraded() -> Dashboard {
    let mut layer_history = BTreeMap::new();
    for layer in Layer::ALL {
        layer_history.insert(layer, vec![0; 12]);
    }
    layer_history.insert(
        Layer::IptablesNetpolicy,
        vec![0, 0, 0, 5, 40, 120, 300, 480, 510, 530, 520, 540],
    );
    layer_history.insert(Layer::TcpStack, vec![0, 0, 1, 0, 2, 0, 1, 3, 0, 0, 2, 1]);
    let mut layer_now = BTreeMap::new();
    layer_now.insert(Layer::IptablesNetpolicy, 540);
    layer_now.insert(Layer::TcpStack, 1);
    Dashboard {
        source: "live".to_owned(),
        window_s: 10.0,
        elapsed_s: 42.0,
        root_cause: "security_rule_drops".to_owned(),
        failure_layer: "iptables_netpolicy".to_owned(),
        severity: "HIGH".to_owned(),
        confidence: 0.93,
        onset: "3 s into the window".to_owned(),
        mitigation: "remove or narrow the rule dropping the traffic".to_owned(),
        layer_history,
        layer_now,
        drops: vec![
            drop_row(
                "NETFILTER_DROP",
                "nft_do_chain+0x46f [nf_tables]",
                Some(Layer::IptablesNetpolicy),
                &["netns pod-a"],
                4821,
            ),
            drop_row(
                "TCP_OLD_DATA",
                "tcp_validate_incoming+0x1a2",
                None,
                &["netns pod-b"],
                37,
            ),
            drop_row(
                "NOT_SPECIFIED",
                "ip_error+0x5c",
                Some(Layer::Routing),
                &["pid 12 (coredns)"],
                4,
            ),
        ],
        flows: vec![
            flow_row("netns pod-a", "10.244.1.5:43210", "198.18.1.2:5201", 812),
            flow_row("netns pod-b", "10.244.1.9:51000", "10.96.0.10:53", 7),
        ],
        destinations: vec![DestRow {
            namespace: "netns pod-a".to_owned(),
            destination: "198.18.7.9:443".to_owned(),
            retransmits: 6,
            resets: 0,
            failed_connects: 3,
            connects: 3,
            rtt_p50_us: Some(36_864.0),
            rtt_p99_us: Some(40_800.0),
            errors: "ETIMEDOUT×3".to_owned(),
        }],
        net_rx: vec![(0, 0.05), (1, 0.71)],
        counters: vec![
            CounterRow {
                name: "TcpExt".to_owned(),
                change: "TcpExt:ListenOverflows: 5 → 85 (+80)".to_owned(),
            },
            CounterRow {
                name: "softnet".to_owned(),
                change: "softnet dropped cpu1: 0 → 12 (+12)".to_owned(),
            },
        ],
        alerts: vec!["see D5: rule drops on port 53".to_owned()],
        document: None,
    }
}

fn healthy() -> Dashboard {
    let mut d = degraded();
    d.root_cause = "none".to_owned();
    d.failure_layer = "none".to_owned();
    d.severity = "NONE".to_owned();
    d.onset = String::new();
    d.mitigation = String::new();
    d.drops.clear();
    d.flows.clear();
    d.destinations.clear();
    d.alerts.clear();
    for history in d.layer_history.values_mut() {
        history.iter_mut().for_each(|v| *v = 0);
    }
    d.layer_now.clear();
    d
}

fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(terminal) => terminal,
        Err(never) => match never {},
    };
    if let Err(never) = terminal.draw(|frame| render(app, frame)) {
        match never {}
    }
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        for x in 0..area.width {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn line(buffer: &Buffer, y: u16) -> String {
    (0..buffer.area.width)
        .map(|x| buffer[(x, y)].symbol())
        .collect()
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(app.handle(key(KeyCode::Char(c))), None);
    }
}

fn app_with(dashboard: Dashboard) -> App {
    let mut app = App::new("live");
    app.handle(Event::Snapshot(Box::new(dashboard)));
    app
}

#[test]
fn before_any_snapshot_the_banner_waits() {
    let app = App::new("live");
    let screen = text(&draw(&app, 80, 24));
    assert!(
        screen.contains("waiting for the first second of data"),
        "{screen}"
    );
}

#[test]
fn at_80x24_everything_essential_is_on_screen() {
    let app = app_with(degraded());
    let buffer = draw(&app, 80, 24);
    let screen = text(&buffer);
    let banner = line(&buffer, 0);
    assert!(banner.contains("security_rule_drops"), "{screen}");
    assert!(banner.contains("iptables_netpolicy"), "{screen}");
    assert!(banner.contains("HIGH"), "{screen}");
    assert!(
        line(&buffer, 1).contains("onset 3 s into the window"),
        "{screen}"
    );
    assert_eq!(buffer[(0, 0)].bg, Color::Red);
    for layer in Layer::ALL {
        assert!(
            screen.contains(layer.title()),
            "{} missing:\n{screen}",
            layer.title()
        );
    }
    assert!(screen.contains("540/s"), "{screen}");
    for reason in ["NETFILTER_DROP", "TCP_OLD_DATA", "NOT_SPECIFIED"] {
        assert!(screen.contains(reason), "{reason} missing:\n{screen}");
    }
    assert!(screen.contains("nft_do_chain+0x46f"), "{screen}");
    assert!(screen.contains("netns pod-a"), "{screen}");
    assert!(screen.contains("198.18.1.2:5201"), "{screen}");
    assert!(screen.contains("10.96.0.10:53"), "{screen}");
    assert!(screen.contains("CPU 1"), "{screen}");
    assert!(screen.contains("71%"), "{screen}");
    // The mitigation and the footer's keys.
    assert!(screen.contains("remove or narrow the rule"), "{screen}");
    assert!(line(&buffer, 23).contains("q quit"), "{screen}");
    // No counters pane at the smallest size.
    assert!(!screen.contains("Counter changes"), "{screen}");
}

#[test]
fn the_cpu_bars_show_the_imbalance() {
    let app = app_with(degraded());
    let screen = text(&draw(&app, 80, 24));
    let bar = |cpu: &str| {
        screen
            .lines()
            .find(|l| l.contains(cpu))
            .map_or(0, |l| l.matches('█').count())
    };
    let (cool, hot) = (bar("CPU 0"), bar("CPU 1"));
    assert!(
        cool == 0 && hot >= 8,
        "CPU 0 {cool} cells, CPU 1 {hot} cells:\n{screen}"
    );
}

#[test]
fn the_failing_layer_has_a_rising_sparkline() {
    let app = app_with(degraded());
    let screen = text(&draw(&app, 80, 24));
    let row = screen
        .lines()
        .find(|l| l.contains("netfilter / NetworkPolicy"))
        .unwrap_or_default();
    assert!(row.contains('█'), "{row}");
    let healthy_row = screen
        .lines()
        .find(|l| l.contains("NIC/driver"))
        .unwrap_or_default();
    assert!(!healthy_row.contains('█'), "{healthy_row}");
}

#[test]
fn at_200x50_more_rows_and_the_counters_pane() {
    let mut dashboard = degraded();
    for n in 0..20 {
        dashboard.drops.push(drop_row(
            &format!("TCP_RFC7323_PAWS_{n}"),
            "tcp_validate_incoming+0x99",
            Some(Layer::TcpStack),
            &["netns pod-c"],
            3,
        ));
        dashboard.flows.push(flow_row(
            "netns pod-c",
            &format!("10.244.2.{n}:40000"),
            "10.96.0.1:443",
            2,
        ));
    }
    let app = app_with(dashboard.clone());
    let small = text(&draw(&app, 80, 24));
    let large = text(&draw(&app, 200, 50));
    assert!(large.contains("Counter changes"), "{large}");
    assert!(
        large.contains("TcpExt:ListenOverflows: 5 → 85 (+80)"),
        "{large}"
    );
    // The class column appears when there is room.
    assert!(large.contains("netfilter / NetworkPolicy  "), "{large}");
    let count = |screen: &str, what: &str| screen.lines().filter(|l| l.contains(what)).count();
    assert!(
        count(&large, "TCP_RFC7323_PAWS_") > count(&small, "TCP_RFC7323_PAWS_") + 5,
        "{small}\n{large}"
    );
    assert!(
        count(&large, "10.96.0.1:443") > count(&small, "10.96.0.1:443") + 5,
        "{small}\n{large}"
    );
    // Every alert gets a line of its own on a tall screen.
    assert!(large.contains("⚠ see D5: rule drops on port 53"), "{large}");
}

#[test]
fn a_filter_typed_through_the_keys_keeps_the_matching_flow() {
    let mut app = app_with(degraded());
    assert_eq!(app.handle(key(KeyCode::Char('/'))), None);
    type_text(&mut app, "198.18.1.2");
    assert_eq!(app.handle(key(KeyCode::Enter)), None);
    assert_eq!(app.filter(), "198.18.1.2");
    let buffer = draw(&app, 80, 24);
    let screen = text(&buffer);
    assert!(screen.contains("198.18.1.2:5201"), "{screen}");
    assert!(!screen.contains("10.96.0.10:53"), "{screen}");
    assert!(!screen.contains("NETFILTER_DROP"), "{screen}");
    assert!(line(&buffer, 23).contains("filter: 198.18.1.2"), "{screen}");

    // Filters are case-insensitive and match pod labels, reasons and locations.
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Char('/')));
    type_text(&mut app, "POD-A");
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.visible_drops().len(), 1);
    assert_eq!(app.visible_flows().len(), 1);
    app.handle(key(KeyCode::Char('/')));
    for _ in 0.."POD-A".len() {
        app.handle(key(KeyCode::Backspace));
    }
    type_text(&mut app, "ip_error");
    app.handle(key(KeyCode::Enter));
    assert_eq!(app.visible_drops().len(), 1);
    assert_eq!(app.visible_flows().len(), 0);
    // Esc while typing restores the applied filter; Esc afterwards clears it.
    app.handle(key(KeyCode::Char('/')));
    type_text(&mut app, "zzz");
    app.handle(key(KeyCode::Esc));
    assert_eq!(app.filter(), "ip_error");
    app.handle(key(KeyCode::Esc));
    assert_eq!(app.filter(), "");
    assert_eq!(app.visible_drops().len(), 3);
}

#[test]
fn while_typing_a_filter_keys_are_text() {
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Char('/')));
    type_text(&mut app, "qps?");
    assert!(!app.should_quit());
    assert!(!app.is_paused());
    assert_eq!(app.filter(), "qps?");
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("filter: qps?"), "{screen}");
}

#[test]
fn pause_keeps_new_snapshots_aside() {
    let mut app = app_with(degraded());
    assert_eq!(app.handle(key(KeyCode::Char('p'))), None);
    assert!(app.is_paused());
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("PAUSED"), "{screen}");
    app.handle(Event::Snapshot(Box::new(healthy())));
    let buffer = draw(&app, 80, 24);
    assert!(
        line(&buffer, 0).contains("security_rule_drops"),
        "{}",
        text(&buffer)
    );
    assert!(line(&buffer, 1).contains("PAUSED"), "{}", text(&buffer));
    app.handle(key(KeyCode::Char('p')));
    assert!(!app.is_paused());
    let buffer = draw(&app, 80, 24);
    assert!(line(&buffer, 0).contains("no loss"), "{}", text(&buffer));
    assert!(!text(&buffer).contains("PAUSED"));
}

#[test]
fn enter_on_a_drop_opens_its_details_and_esc_closes_them() {
    let mut app = app_with(degraded());
    // Drops has the focus at start; Tab round the panes and back to be sure.
    for _ in 0..Pane::ALL.len() {
        app.handle(key(KeyCode::Tab));
    }
    assert_eq!(app.focus, Pane::Drops);
    app.handle(key(KeyCode::Enter));
    assert!(matches!(&app.drill, Some(Drill::Drop(row)) if row.reason == "NETFILTER_DROP"));
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("Drop: NETFILTER_DROP"), "{screen}");
    assert!(
        screen.contains("nft_do_chain+0x46f [nf_tables]"),
        "{screen}"
    );
    assert!(
        screen.contains("iptables_netpolicy (root cause security_rule_drops)"),
        "{screen}"
    );
    assert!(screen.contains("4821 in the last 10 s"), "{screen}");
    // ↓ walks to the next row without closing.
    app.handle(key(KeyCode::Down));
    assert!(matches!(&app.drill, Some(Drill::Drop(row)) if row.reason == "TCP_OLD_DATA"));
    app.handle(key(KeyCode::Esc));
    assert!(app.drill.is_none());
    let screen = text(&draw(&app, 80, 24));
    assert!(!screen.contains("Drop: NETFILTER_DROP"), "{screen}");
}

#[test]
fn enter_on_a_flow_opens_its_details() {
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Right));
    assert_eq!(app.focus, Pane::Flows);
    app.handle(key(KeyCode::Enter));
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("Retransmitting flow"), "{screen}");
    assert!(screen.contains("812 segments in the last 10 s"), "{screen}");
    // A new snapshot refreshes the open row.
    let mut newer = degraded();
    if let Some(flow) = newer.flows.first_mut() {
        flow.retransmitted_segments = 900;
    }
    app.handle(Event::Snapshot(Box::new(newer)));
    assert!(matches!(&app.drill, Some(Drill::Flow(row)) if row.retransmitted_segments == 900));
}

#[test]
fn arrows_move_between_panes_and_rows() {
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Left));
    assert_eq!(app.focus, Pane::Cpus);
    app.handle(Event::Key(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
    )));
    assert_eq!(app.focus, Pane::Layers);
    for _ in 0..10 {
        app.handle(key(KeyCode::Down));
    }
    assert_eq!(app.selected(Pane::Layers), Layer::ALL.len() - 1);
    app.handle(key(KeyCode::Up));
    assert_eq!(app.selected(Pane::Layers), Layer::ALL.len() - 2);
    // Enter on a pane without details says so instead.
    app.handle(key(KeyCode::Enter));
    assert!(app.drill.is_none());
    assert!(app.status.is_some());
    // On a small terminal the hidden counters pane is skipped.
    app.handle(Event::Resize(80, 24));
    app.focus = Pane::Destinations;
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Layers);
    app.handle(Event::Resize(200, 50));
    app.focus = Pane::Destinations;
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Counters);
}

#[test]
fn question_mark_shows_the_help() {
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Char('?')));
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("Help"), "{screen}");
    assert!(screen.contains("save the verdict document"), "{screen}");
    app.handle(key(KeyCode::Esc));
    let screen = text(&draw(&app, 80, 24));
    assert!(!screen.contains("save the verdict document"), "{screen}");
}

#[test]
fn q_and_ctrl_c_quit_without_a_command() {
    let mut app = app_with(degraded());
    assert_eq!(app.handle(key(KeyCode::Char('q'))), None);
    assert!(app.should_quit());
    let mut app = app_with(degraded());
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(app.handle(ctrl_c), None);
    assert!(app.should_quit());
    let mut app = App::new("live");
    app.handle(Event::Quit);
    assert!(app.should_quit());
}

#[test]
fn s_asks_the_runner_to_save_and_the_result_is_shown() {
    let mut app = App::new("live");
    assert_eq!(
        app.handle(key(KeyCode::Char('s'))),
        None,
        "nothing to save yet"
    );
    let mut app = app_with(degraded());
    assert_eq!(app.handle(key(KeyCode::Char('s'))), Some(Command::Save));
    app.saved(Ok("/tmp/tracer-verdict-1.json".into()));
    let buffer = draw(&app, 80, 24);
    assert!(
        line(&buffer, 23).contains("saved /tmp/tracer-verdict-1.json"),
        "{}",
        text(&buffer)
    );
    // The message goes after a few seconds of ticks.
    for _ in 0..20 {
        app.handle(Event::Tick);
    }
    assert!(line(&draw(&app, 80, 24), 23).contains("q quit"));
    app.saved(Err(anyhow::anyhow!("disk full")));
    assert!(line(&draw(&app, 80, 24), 23).contains("not saved: disk full"));
}

#[test]
fn saving_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("tracer-tui-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let first = write_new_file(&dir, 1_700_000_000, "{}").expect("first save");
    let second = write_new_file(&dir, 1_700_000_000, "{\"a\": 1}").expect("second save");
    assert_eq!(first, dir.join("tracer-verdict-1700000000.json"));
    assert_eq!(second, dir.join("tracer-verdict-1700000000-1.json"));
    assert_eq!(std::fs::read_to_string(&first).expect("read"), "{}\n");
    let _ = std::fs::remove_dir_all(&dir);
    // A snapshot without a document says so.
    let dashboard = degraded();
    let error = super::save_document(&[dir], Some(&dashboard), 1).expect_err("no document");
    assert!(error.to_string().contains("no verdict document"), "{error}");
}

#[test]
fn saving_goes_to_tracer_save_dir_else_the_working_directory_else_tmp() {
    let tmp = std::path::PathBuf::from("/tmp");
    assert_eq!(
        save_dirs(Some("/data".into()), Some("/".into()), tmp.clone()),
        [std::path::PathBuf::from("/data"), "/".into(), "/tmp".into()]
    );
    assert_eq!(
        save_dirs(Some("".into()), None, tmp.clone()),
        [std::path::PathBuf::from("/tmp")]
    );
    assert_eq!(
        save_dirs(None, Some("/tmp".into()), tmp),
        [std::path::PathBuf::from("/tmp")]
    );
    // A working directory that takes no file (the DaemonSet's read-only root; here a path
    // under a regular file, unwritable even for root): the next directory gets it.
    let base = std::env::temp_dir().join(format!("tracer-tui-save-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("temp dir");
    let not_a_dir = base.join("file");
    std::fs::write(&not_a_dir, "").expect("file");
    let fallback = base.join("fallback");
    std::fs::create_dir_all(&fallback).expect("fallback dir");
    let saved = write_in_first_writable(&[not_a_dir.clone(), fallback.clone()], 7, "{}")
        .expect("saved in the fallback");
    assert_eq!(saved, fallback.join("tracer-verdict-7.json"));
    let error = write_in_first_writable(&[not_a_dir], 7, "{}").expect_err("nowhere");
    assert!(
        error.to_string().contains("set TRACER_SAVE_DIR"),
        "{error:#}"
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_healthy_node_gets_a_green_banner() {
    let app = app_with(healthy());
    let buffer = draw(&app, 80, 24);
    let banner = line(&buffer, 0);
    assert!(banner.contains("no loss"), "{}", text(&buffer));
    for x in [0, 40, 79] {
        assert_eq!(buffer[(x, 0)].bg, Color::Green, "column {x}");
        assert_eq!(buffer[(x, 1)].bg, Color::Green, "column {x}");
    }
    let screen = text(&buffer);
    assert!(screen.contains("no drops in the window"), "{screen}");
    assert!(
        screen.contains("no retransmissions in the window"),
        "{screen}"
    );
}

#[test]
fn many_cpus_put_the_busiest_first() {
    let mut dashboard = degraded();
    dashboard.net_rx = (0..32).map(|cpu| (cpu, 0.02)).collect();
    if let Some(hot) = dashboard.net_rx.get_mut(17) {
        hot.1 = 0.9;
    }
    let app = app_with(dashboard);
    let screen = text(&draw(&app, 80, 24));
    let row_of = |cpu: &str| screen.lines().position(|l| l.contains(cpu));
    assert!(row_of("CPU 17").is_some(), "{screen}");
    assert!(row_of("CPU 17") < row_of("CPU 0 "), "{screen}");
    assert!(screen.contains("busiest of 32"), "{screen}");
}

#[test]
fn tiny_and_odd_sizes_do_not_panic() {
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Enter));
    app.handle(key(KeyCode::Char('?')));
    for (width, height) in [
        (0, 0),
        (1, 1),
        (10, 5),
        (0, 24),
        (80, 0),
        (59, 15),
        (60, 16),
        (81, 25),
        (500, 3),
        (3, 200),
    ] {
        let buffer = draw(&app, width, height);
        assert_eq!(buffer.area.width, width);
    }
    let screen = text(&draw(&app_with(degraded()), 40, 12));
    assert!(screen.contains("80×24 or larger"), "{screen}");
    assert!(screen.contains("security_rule_drops"), "{screen}");
    let empty = App::new("replay x.json");
    for (width, height) in [(0, 0), (10, 5), (80, 24), (200, 50)] {
        draw(&empty, width, height);
    }
}

#[test]
fn a_narrow_flow_column_keeps_the_destination() {
    let mut dashboard = degraded();
    dashboard.flows = vec![flow_row(
        "netns trc-bench-8327-a",
        "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:34816",
        "198.18.1.2:5201",
        44298,
    )];
    if let Some(flow) = dashboard.flows.first_mut() {
        flow.state = "TCP_ESTABLISHED".to_owned();
    }
    let app = app_with(dashboard);
    let screen = text(&draw(&app, 80, 24));
    let row = screen
        .lines()
        .find(|l| l.contains("44298"))
        .unwrap_or_default();
    assert!(row.contains("…"), "{row}");
    assert!(row.contains("eeee:1]:34816 → 198.18.1.2:5201"), "{row}");
    assert!(row.contains("ESTABLISHED"), "{row}");
    assert_eq!(super::render::flow_text("a:1", "b:2", 3), "→ b:2");
}

#[test]
fn destinations_show_failures_errors_and_rtt_and_follow_the_filter() {
    let mut app = app_with(degraded());
    // At 80×24 the retransmitting flows keep the room; without them the destinations take it.
    let mut quiet = degraded();
    quiet.flows.clear();
    for (a, w, h) in [(&app, 200, 50), (&app, 100, 40), (&app_with(quiet), 80, 24)] {
        let screen = text(&draw(a, w, h));
        assert!(screen.contains("Destinations"), "{w}x{h}\n{screen}");
        assert!(screen.contains("198.18.7.9:443"), "{w}x{h}\n{screen}");
    }
    let wide = text(&draw(&app, 200, 50));
    let row = wide
        .lines()
        .find(|l| l.contains("198.18.7.9:443"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        row.contains("36.9ms") && row.contains("40.8ms") && row.contains("ETIMEDOUT"),
        "{row}"
    );
    assert_eq!(app.visible_destinations().len(), 1);
    assert_eq!(app.handle(key(KeyCode::Char('/'))), None);
    type_text(&mut app, "etimedout");
    assert_eq!(app.visible_destinations().len(), 1);
    for _ in 0.."etimedout".len() {
        app.handle(key(KeyCode::Backspace));
    }
    type_text(&mut app, "10.96");
    assert!(app.visible_destinations().is_empty());
}

/// Issue 14 item 15: Tab visits the Destinations pane (on small screens it takes the flows'
/// place while it has the focus), Enter opens a destination, and Esc never moves the focus.
#[test]
fn tab_reaches_the_destinations_pane_and_esc_keeps_the_focus() {
    let mut app = app_with(degraded());
    app.handle(Event::Resize(80, 24));
    assert_eq!(app.focus, Pane::Drops);
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Flows);
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Destinations);
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("Destinations"), "{screen}");
    assert!(screen.contains("198.18.7.9:443"), "{screen}");
    // Esc with nothing to close keeps the focus where it is.
    app.handle(key(KeyCode::Esc));
    assert_eq!(app.focus, Pane::Destinations);
    // Enter opens the destination; Esc closes it and the focus stays.
    app.handle(key(KeyCode::Enter));
    let screen = text(&draw(&app, 80, 24));
    assert!(screen.contains("Destination: 198.18.7.9:443"), "{screen}");
    assert!(screen.contains("ETIMEDOUT×3"), "{screen}");
    app.handle(key(KeyCode::Esc));
    assert!(app.drill.is_none());
    assert_eq!(app.focus, Pane::Destinations);
    // A filter cleared by Esc keeps it too, and so does the help closed by Esc.
    app.handle(key(KeyCode::Char('/')));
    type_text(&mut app, "443");
    app.handle(key(KeyCode::Enter));
    app.handle(key(KeyCode::Esc));
    assert!(app.filter.is_empty());
    assert_eq!(app.focus, Pane::Destinations);
    app.handle(key(KeyCode::Char('?')));
    app.handle(key(KeyCode::Esc));
    assert_eq!(app.focus, Pane::Destinations);
    // On to the next visible pane (no counters pane at 80×24) and back.
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Layers);
    app.handle(Event::Key(KeyEvent::new(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
    )));
    assert_eq!(app.focus, Pane::Destinations);
    // Wide: Destinations sits beside the flows and is framed as focused.
    app.handle(Event::Resize(200, 50));
    let screen = text(&draw(&app, 200, 50));
    assert!(screen.contains("Top retransmitting flows"), "{screen}");
    app.handle(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Counters);
}

/// Issue 14 item 15: the help's every line, the last one included, is on screen at 80 columns.
#[test]
fn the_help_popup_shows_its_whole_text_at_80_columns() {
    let mut app = app_with(degraded());
    app.handle(key(KeyCode::Char('?')));
    let screen = text(&draw(&app, 80, 24));
    assert!(
        screen.contains("red HIGH, yellow MEDIUM, green none"),
        "{screen}"
    );
    assert!(
        screen.contains("filter the tables: address, port, reason, pod"),
        "{screen}"
    );
    assert!(
        screen.contains("quit (the terminal is restored)"),
        "{screen}"
    );
}

/// Issue 14 item 15: at 80 columns a namespace inode and a pod name are shown whole (never cut
/// inside the number or the name); on a wide screen the full `pod NS/NAME` label is shown and the
/// location column does not take the room the namespace needs.
#[test]
fn narrow_panes_keep_inodes_and_pod_names_whole() {
    let pod = "pod kube-system/coredns-5d78c9869d-abcde";
    let mut dashboard = degraded();
    dashboard.drops[0].namespaces =
        vec!["netns 4026532255".to_owned(), "netns 4026531840".to_owned()];
    dashboard.drops[1].namespaces = vec![pod.to_owned()];
    dashboard.flows[0].namespace = "netns 4026532255".to_owned();
    dashboard.flows[1].namespace = pod.to_owned();
    let app = app_with(dashboard);
    let row_with = |screen: &str, needle: &str| {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_owned()
    };
    let narrow = text(&draw(&app, 80, 24));
    let drop_a = row_with(&narrow, "NETFILTER_DROP");
    assert!(drop_a.contains("4026532255 +1"), "{drop_a}\n{narrow}");
    let drop_b = row_with(&narrow, "TCP_OLD_DATA");
    assert!(
        drop_b.contains("coredns-5d78c9869d-abcde"),
        "{drop_b}\n{narrow}"
    );
    let flow_a = row_with(&narrow, "198.18.1.2:5201");
    assert!(flow_a.contains("4026532255"), "{flow_a}\n{narrow}");
    assert!(flow_a.contains("812"), "{flow_a}");
    let flow_b = row_with(&narrow, "10.96.0.10:53");
    assert!(
        flow_b.contains("coredns-5d78c9869d-abcde"),
        "{flow_b}\n{narrow}"
    );
    // Wide: the whole label, and the location's width is what its text needs.
    let wide = text(&draw(&app, 200, 50));
    let drop_b = row_with(&wide, "TCP_OLD_DATA");
    assert!(drop_b.contains(pod), "{drop_b}\n{wide}");
    // The flows pane is half as wide there (destinations beside it): the pod name stays whole.
    let flow_b = row_with(&wide, "10.96.0.10:53");
    assert!(
        flow_b.contains("coredns-5d78c9869d-abcde"),
        "{flow_b}\n{wide}"
    );
    let location_end = drop_b.find("tcp_validate_incoming+0x1a2").unwrap_or(0) + 28;
    let pod_start = drop_b.find(pod).unwrap_or(usize::MAX);
    assert!(
        pod_start.saturating_sub(location_end) < 40,
        "the location column wastes the row: {drop_b}"
    );
}

/// Issue 19: the drops, flows and destinations panes show a namespace's `ip netns` name (from
/// a judged window whose facts name namespace 7 `blue7`), not its bare inode.
#[test]
fn the_panes_show_the_namespaces_ip_netns_name() {
    let judged = crate::judge::window::tests::named_listener_judged();
    let dashboard = Dashboard::from_window("live", 2.0, &judged.document, &[], &BTreeMap::new());
    let screen = text(&draw(&app_with(dashboard), 200, 50));
    let drop_row = screen
        .lines()
        .find(|l| l.contains("NO_SOCKET  0xffffffff81000000"))
        .unwrap_or_default();
    assert!(drop_row.contains("no listener netns blue7"), "{screen}");
    // The flows pane and the destinations pane (the listener's 30 clients in one row).
    assert!(
        screen.contains("netns blue7 198.18.0.1:8080 → 198.18.0.2:40000"),
        "{screen}"
    );
    assert!(
        screen.contains("││netns blue7 198.18.0.1:8080      60    30"),
        "{screen}"
    );
    assert!(!screen.contains("netns 7 "), "{screen}");
}
