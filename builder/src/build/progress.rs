//! Build progress, as BuildKit shows it: `plain` (`#N [stage k/n] INSTRUCTION`, log lines with
//! the seconds since the step started, `#N CACHED`, `#N DONE 0.3s`, `#N ERROR: …`), `rawjson`
//! (one BuildKit SolveStatus JSON object per line), `quiet` (nothing), and `tty` (one line per
//! running step with a timer and its last log lines, folded when done).

use base64::Engine as _;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Tty,
    RawJson,
    Quiet,
}

struct Vertex {
    number: usize,
    name: String,
    inputs: Vec<String>,
    started: Option<(Instant, SystemTime)>,
    /// A log line not yet ended.
    partial: Vec<u8>,
    /// The last lines, for the tty display and error reports.
    tail: Vec<String>,
    done: bool,
    cached: bool,
    /// Seconds the step took, once done.
    took: Option<f64>,
    failed: bool,
    /// Why the step missed the cache.
    miss: Option<String>,
}

/// What the display knew of one step, at the end of a build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepSummary {
    /// The vertex (the op's definition digest, or a name for the build's own steps).
    pub id: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub cached: bool,
    pub failed: bool,
    /// Seconds it took, when it ran to the end.
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miss: Option<String>,
    /// Its output's last lines, when it failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
}

struct State {
    out: Box<dyn Write + Send>,
    next: usize,
    vertices: HashMap<String, Vertex>,
    /// Lines the tty display drew last time (erased before redrawing).
    drawn: usize,
    last_draw: Option<Instant>,
}

/// A thread-safe progress display for one build.
pub struct Progress {
    mode: Mode,
    state: Mutex<State>,
}

/// How many log lines a step keeps for error messages.
pub const TAIL: usize = 10;

/// The longest log line: longer output without a newline is split into lines of this size
/// (BuildKit's progress also hands logs on in bounded chunks).
pub const MAX_LINE: usize = 16 * 1024;

/// The length of the longest prefix of `b` that does not end inside a UTF-8 sequence (all of
/// it when its end is not a cut sequence).
fn utf8_prefix(b: &[u8]) -> usize {
    // The last lead byte among the final three, if its sequence is cut short.
    for back in 1..=3.min(b.len()) {
        let i = b.len() - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if need > back && i > 0 { i } else { b.len() };
    }
    b.len()
}

fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let base = crate::timefmt::rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", base.trim_end_matches('Z'), d.subsec_nanos())
}

impl Progress {
    pub fn new(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode,
            state: Mutex::new(State {
                out,
                next: 1,
                vertices: HashMap::new(),
                drawn: 0,
                last_draw: None,
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st)
    }

    fn vertex<'a>(st: &'a mut State, id: &str, name: &str, inputs: &[String]) -> &'a mut Vertex {
        if !st.vertices.contains_key(id) {
            let number = st.next;
            st.next += 1;
            st.vertices.insert(
                id.to_string(),
                Vertex {
                    number,
                    name: name.to_string(),
                    inputs: inputs.to_vec(),
                    started: None,
                    partial: Vec::new(),
                    tail: Vec::new(),
                    done: false,
                    cached: false,
                    took: None,
                    failed: false,
                    miss: None,
                },
            );
        }
        st.vertices.get_mut(id).expect("inserted above")
    }

    fn json(st: &mut State, v: serde_json::Value) {
        let _ = writeln!(st.out, "{v}");
    }

    fn vertex_json(
        v: &Vertex,
        id: &str,
        completed: Option<SystemTime>,
        cached: bool,
        error: Option<&str>,
    ) -> serde_json::Value {
        let mut o = serde_json::json!({
            "digest": id,
            "inputs": v.inputs,
            "name": v.name,
        });
        if let Some((_, s)) = v.started {
            o["started"] = rfc3339_nano(s).into();
        }
        if let Some(c) = completed {
            o["completed"] = rfc3339_nano(c).into();
        }
        if cached {
            o["cached"] = true.into();
        }
        if let Some(e) = error {
            o["error"] = e.into();
        }
        if let Some(m) = &v.miss {
            o["cacheMiss"] = m.clone().into();
        }
        serde_json::json!({ "vertexes": [o] })
    }

    /// A step starts running.
    pub fn start(&self, id: &str, name: &str, inputs: &[String]) {
        let mode = self.mode;
        self.with(|st| {
            let v = Self::vertex(st, id, name, inputs);
            v.started = Some((Instant::now(), SystemTime::now()));
            let (n, name) = (v.number, v.name.clone());
            match mode {
                Mode::Plain => {
                    let _ = writeln!(st.out, "#{n} {name}");
                }
                Mode::RawJson => {
                    let j = Self::vertex_json(&st.vertices[id], id, None, false, None);
                    Self::json(st, j);
                }
                Mode::Tty => Self::draw(st, true),
                Mode::Quiet => {}
            }
        });
    }

    /// Every step shown so far, in the order they were first shown: for the build's record.
    pub fn steps(&self) -> Vec<StepSummary> {
        self.with(|st| {
            let mut v: Vec<(&String, &Vertex)> = st.vertices.iter().collect();
            v.sort_by_key(|(_, x)| x.number);
            v.into_iter()
                .map(|(id, x)| StepSummary {
                    id: id.clone(),
                    name: x.name.clone(),
                    inputs: x.inputs.clone(),
                    cached: x.cached,
                    failed: x.failed,
                    seconds: x.took,
                    miss: x.miss.clone(),
                    tail: if x.failed { x.tail.clone() } else { vec![] },
                })
                .collect()
        })
    }

    /// Why a step that starts missed the cache: plain output prints it under the step
    /// (`#5 cache miss: context file src/main.c changed`), rawjson carries it in the vertex
    /// (`cacheMiss`), the tty view shows it beside the step.
    pub fn miss(&self, id: &str, reason: &str) {
        let mode = self.mode;
        self.with(|st| {
            let Some(v) = st.vertices.get_mut(id) else {
                return;
            };
            v.miss = Some(reason.to_string());
            let n = v.number;
            match mode {
                Mode::Plain => {
                    let _ = writeln!(st.out, "#{n} cache miss: {reason}");
                }
                Mode::RawJson => {
                    let j = Self::vertex_json(&st.vertices[id], id, None, false, None);
                    Self::json(st, j);
                }
                Mode::Tty => Self::draw(st, true),
                Mode::Quiet => {}
            }
        });
    }

    /// A step whose result came from the cache.
    pub fn cached(&self, id: &str, name: &str, inputs: &[String]) {
        let mode = self.mode;
        self.with(|st| {
            let now = SystemTime::now();
            let v = Self::vertex(st, id, name, inputs);
            v.started = Some((Instant::now(), now));
            v.done = true;
            v.cached = true;
            let (n, name) = (v.number, v.name.clone());
            match mode {
                Mode::Plain => {
                    let _ = writeln!(st.out, "#{n} {name}\n#{n} CACHED\n");
                }
                Mode::RawJson => {
                    let j = Self::vertex_json(&st.vertices[id], id, Some(now), true, None);
                    Self::json(st, j);
                }
                Mode::Tty => Self::draw(st, true),
                Mode::Quiet => {}
            }
        });
    }

    /// Output of a running step: split into lines at newlines and every [`MAX_LINE`] bytes
    /// (a longer line is shown as several), each byte looked at once, so a step printing
    /// one endless line costs time in proportion to what it prints and memory bounded by
    /// [`MAX_LINE`] for the partial line and [`TAIL`] lines.
    pub fn log(&self, id: &str, data: &[u8]) {
        let mode = self.mode;
        self.with(|st| {
            let State { out, vertices, .. } = st;
            let Some(v) = vertices.get_mut(id) else {
                return;
            };
            let elapsed = v.started.map(|(i, _)| i.elapsed()).unwrap_or_default();
            let n = v.number;
            if !data.is_empty() && v.partial.capacity() < MAX_LINE {
                v.partial.reserve_exact(MAX_LINE - v.partial.len());
            }
            let mut rest = data;
            while !rest.is_empty() {
                let room = MAX_LINE - v.partial.len();
                let window = &rest[..rest.len().min(room)];
                let line = match window.iter().position(|b| *b == b'\n') {
                    Some(pos) => {
                        v.partial.extend_from_slice(&window[..pos]);
                        rest = &rest[pos + 1..];
                        Self::take_line(v, v.partial.len())
                    }
                    None => {
                        v.partial.extend_from_slice(window);
                        rest = &rest[window.len()..];
                        if v.partial.len() < MAX_LINE {
                            continue;
                        }
                        // A full chunk ends where its last whole character ends.
                        let cut = utf8_prefix(&v.partial);
                        Self::take_line(v, cut)
                    }
                };
                if mode == Mode::Plain {
                    let _ = writeln!(out, "#{n} {:.3} {line}", elapsed.as_secs_f64());
                }
            }
            match mode {
                Mode::RawJson => {
                    let j = serde_json::json!({ "logs": [{
                        "vertex": id,
                        "stream": 1,
                        "data": base64::engine::general_purpose::STANDARD.encode(data),
                        "timestamp": rfc3339_nano(SystemTime::now()),
                    }]});
                    Self::json(st, j);
                }
                Mode::Tty => Self::draw(st, false),
                Mode::Plain | Mode::Quiet => {}
            }
        });
    }

    /// The first `len` bytes of the partial line as a line of its own (kept in the tail);
    /// the rest stays partial.
    fn take_line(v: &mut Vertex, len: usize) -> String {
        let text = String::from_utf8_lossy(&v.partial[..len]).into_owned();
        v.partial.drain(..len);
        v.tail.push(text.clone());
        if v.tail.len() > TAIL {
            v.tail.remove(0);
        }
        text
    }

    fn flush_partial(v: &mut Vertex) -> Option<String> {
        if v.partial.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&v.partial).into_owned();
        v.partial.clear();
        v.tail.push(text.clone());
        if v.tail.len() > TAIL {
            v.tail.remove(0);
        }
        Some(text)
    }

    /// A step finished (`error`: it failed).
    pub fn done(&self, id: &str, error: Option<&str>) {
        let mode = self.mode;
        self.with(|st| {
            let Some(v) = st.vertices.get_mut(id) else {
                return;
            };
            v.done = true;
            let elapsed = v.started.map(|(i, _)| i.elapsed()).unwrap_or_default();
            v.took = Some(elapsed.as_secs_f64());
            v.failed = error.is_some();
            let rest = Self::flush_partial(v);
            let n = v.number;
            match mode {
                Mode::Plain => {
                    if let Some(l) = rest {
                        let _ = writeln!(st.out, "#{n} {:.3} {l}", elapsed.as_secs_f64());
                    }
                    match error {
                        None => {
                            let _ = writeln!(st.out, "#{n} DONE {:.1}s\n", elapsed.as_secs_f64());
                        }
                        Some(e) => {
                            let _ = writeln!(st.out, "#{n} ERROR: {e}\n");
                        }
                    }
                }
                Mode::RawJson => {
                    let j = Self::vertex_json(
                        &st.vertices[id],
                        id,
                        Some(SystemTime::now()),
                        false,
                        error,
                    );
                    Self::json(st, j);
                }
                Mode::Tty => Self::draw(st, true),
                Mode::Quiet => {}
            }
        });
    }

    /// The last lines a step printed.
    pub fn tail(&self, id: &str) -> Vec<String> {
        self.with(|st| {
            st.vertices.get_mut(id).map(|v| {
                Self::flush_partial(v);
                v.tail.clone()
            })
        })
        .unwrap_or_default()
    }

    /// Ends the display (the tty display draws its final state).
    pub fn finish(&self) {
        if self.mode == Mode::Tty {
            self.with(|st| Self::draw(st, true));
        }
        self.with(|st| {
            let _ = st.out.flush();
        });
    }

    /// The tty display: every step, in order; running ones with their timer and last lines.
    /// Redrawn in place (cursor up, clear to end), at most every 100 ms unless `force`.
    fn draw(st: &mut State, force: bool) {
        if !force
            && st
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        st.last_draw = Some(Instant::now());
        let mut vs: Vec<&Vertex> = st.vertices.values().collect();
        vs.sort_by_key(|v| v.number);
        let width = terminal_width();
        let mut lines = Vec::new();
        for v in vs {
            let secs = v
                .took
                .or_else(|| v.started.map(|(i, _)| i.elapsed().as_secs_f64()))
                .unwrap_or(0.0);
            let (head, status) = if v.failed {
                (format!(" => ERROR {} ", v.name), format!("{secs:.1}s"))
            } else if v.cached {
                (format!(" => CACHED {} ", v.name), "0.0s".to_string())
            } else {
                match &v.miss {
                    Some(m) => (
                        format!(" => {} (cache miss: {m}) ", v.name),
                        format!("{secs:.1}s"),
                    ),
                    None => (format!(" => {} ", v.name), format!("{secs:.1}s")),
                }
            };
            lines.push(fit(&head, &status, width));
            if !v.done {
                for l in v.tail.iter().rev().take(6).rev() {
                    lines.push(fit(&format!(" => => # {l}"), "", width));
                }
            }
        }
        let mut buf = String::new();
        if st.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", st.drawn));
        }
        buf.push_str("\x1b[J");
        for l in &lines {
            buf.push_str(l);
            buf.push('\n');
        }
        st.drawn = lines.len();
        let _ = st.out.write_all(buf.as_bytes());
        let _ = st.out.flush();
    }
}

fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .map(|w| w.ws_col as usize)
        .ok()
        .filter(|w| *w >= 20)
        .unwrap_or(80)
}

/// `head` cut or padded so `status` ends at the right margin.
fn fit(head: &str, status: &str, width: usize) -> String {
    let room = width.saturating_sub(status.len() + 1);
    let mut h: String = head
        .chars()
        .filter(|c| !c.is_control())
        .take(room)
        .collect();
    while h.chars().count() < room {
        h.push(' ');
    }
    format!("{h}{status}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(b: &Buf) -> String {
        String::from_utf8(b.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_is_buildkits_format() {
        let b = Buf::default();
        let p = Progress::new(Mode::Plain, Box::new(b.clone()));
        p.cached("sha256:a", "[base 2/3] WORKDIR /x", &[]);
        p.start("sha256:b", "[base 3/3] RUN echo hi", &["sha256:a".into()]);
        p.log("sha256:b", b"hi\npart");
        p.log("sha256:b", b"ial\n");
        p.done("sha256:b", None);
        let t = text(&b);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "#1 [base 2/3] WORKDIR /x");
        assert_eq!(lines[1], "#1 CACHED");
        assert_eq!(lines[3], "#2 [base 3/3] RUN echo hi");
        assert!(
            lines[4].starts_with("#2 0.") && lines[4].ends_with(" hi"),
            "{t}"
        );
        assert!(lines[5].ends_with(" partial"), "{t}");
        assert!(lines[6].starts_with("#2 DONE "), "{t}");
        assert_eq!(p.tail("sha256:b"), vec!["hi", "partial"]);
    }

    #[test]
    fn rawjson_is_one_solve_status_per_line() {
        let b = Buf::default();
        let p = Progress::new(Mode::RawJson, Box::new(b.clone()));
        p.start("sha256:b", "RUN x", &[]);
        p.log("sha256:b", b"out\n");
        p.done("sha256:b", Some("exit code: 1"));
        let t = text(&b);
        let v: Vec<serde_json::Value> = t
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v[0]["vertexes"][0]["name"], "RUN x");
        assert!(v[0]["vertexes"][0]["started"].is_string());
        assert_eq!(v[1]["logs"][0]["data"], "b3V0Cg==");
        assert_eq!(v[2]["vertexes"][0]["error"], "exit code: 1");
        assert!(v[2]["vertexes"][0]["completed"].is_string());
    }

    /// Counts what is written and remembers only the longest line.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<(usize, usize, usize)>>);
    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut g = self.0.lock().unwrap();
            for c in b {
                if *c == b'\n' {
                    g.0 += 1;
                    g.2 = g.2.max(g.1);
                    g.1 = 0;
                } else {
                    g.1 += 1;
                }
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_40_mb_line_is_split_into_bounded_chunks() {
        const SIZE: usize = 40_000_000;
        for piece in [4096, 64 * 1024, SIZE] {
            let out = Lines::default();
            let p = Progress::new(Mode::Plain, Box::new(out.clone()));
            p.start("v", "RUN yes", &[]);
            let data = vec![b'y'; piece];
            let mut sent = 0;
            while sent < SIZE {
                let n = piece.min(SIZE - sent);
                p.log("v", &data[..n]);
                sent += n;
                p.with(|st| {
                    let v = &st.vertices["v"];
                    // Memory held: at most one chunk partial, TAIL chunks kept.
                    assert!(v.partial.len() < MAX_LINE);
                    assert!(v.partial.capacity() <= MAX_LINE);
                    assert!(v.tail.len() <= TAIL);
                    assert!(v.tail.iter().all(|l| l.len() <= MAX_LINE));
                });
            }
            p.done("v", None);
            let (lines, _, longest) = *out.0.lock().unwrap();
            // One output line per chunk (the rest flushed at the end), plus start and DONE.
            let chunks = SIZE.div_ceil(MAX_LINE);
            assert_eq!(lines, 1 + chunks + 2, "piece {piece}");
            assert!(longest <= MAX_LINE + 32, "{longest}");
        }
    }

    #[test]
    fn chunks_end_on_whole_characters() {
        let b = Buf::default();
        let p = Progress::new(Mode::Plain, Box::new(b.clone()));
        p.start("v", "RUN x", &[]);
        // 'é' is two bytes: the 16 KiB boundary falls inside one of them.
        let sent = format!("a{}\n", "é".repeat(MAX_LINE));
        p.log("v", sent.as_bytes());
        p.done("v", None);
        let t = text(&b);
        assert!(!t.contains('\u{FFFD}'), "a character was cut");
        let body: String = t
            .lines()
            .filter(|l| l.starts_with("#1 0."))
            .map(|l| l.split_once(' ').unwrap().1.split_once(' ').unwrap().1)
            .collect();
        assert_eq!(format!("{body}\n"), sent);
        assert_eq!(utf8_prefix(b"ab\xc3"), 2);
        assert_eq!(utf8_prefix(b"ab\xc3\xa9"), 4);
        assert_eq!(utf8_prefix(b"a\xe2\x82"), 1);
        assert_eq!(utf8_prefix(b"a\xf0\x9f\x98"), 1);
        assert_eq!(utf8_prefix(b"\xff\xff"), 2);
    }

    #[test]
    fn quiet_prints_nothing() {
        let b = Buf::default();
        let p = Progress::new(Mode::Quiet, Box::new(b.clone()));
        p.start("x", "RUN x", &[]);
        p.log("x", b"out\n");
        p.done("x", None);
        p.finish();
        assert_eq!(text(&b), "");
    }
}
