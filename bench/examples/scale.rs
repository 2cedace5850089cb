//! Prints parse and parse+lower times for growing inputs, to check that they scale linearly.
//! `cargo run --release -p strata-bench --example scale`

use std::time::Instant;
use strata_frontend::lower::{BuildOptions, NoResolver, lower};

fn main() {
    for stages in [5usize, 10, 20, 40] {
        let df = strata_bench::large_dockerfile(stages, 200);
        let t = Instant::now();
        let _ = strata_frontend::parser::parse(&df);
        let parse = t.elapsed();
        let t = Instant::now();
        let (l, _) = lower(&df, &BuildOptions::default(), &NoResolver);
        let total = t.elapsed();
        let mb = df.len() as f64 / 1e6;
        println!(
            "{mb:7.2} MB  parse {:8.1} ms ({:6.1} MB/s)  parse+lower {:8.1} ms ({:6.1} MB/s)  ops {}",
            parse.as_secs_f64() * 1e3,
            mb / parse.as_secs_f64(),
            total.as_secs_f64() * 1e3,
            mb / total.as_secs_f64(),
            l.map(|l| l.graph.len()).unwrap_or(0)
        );
    }
}
