//! Parse + lower throughput on a large generated Dockerfile.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use strata_frontend::lower::{BuildOptions, NoResolver, lower};

fn parse_lower(c: &mut Criterion) {
    let df = strata_bench::large_dockerfile(50, 200);
    let mut g = c.benchmark_group("frontend");
    g.throughput(Throughput::Bytes(df.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| strata_frontend::parser::parse(black_box(&df)))
    });
    let opts = BuildOptions::default();
    g.bench_function("parse+lower", |b| {
        b.iter(|| lower(black_box(&df), &opts, &NoResolver))
    });
    g.finish();
}

criterion_group!(benches, parse_lower);
criterion_main!(benches);
