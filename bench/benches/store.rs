//! Hot paths of the local store: context hashing (cold and through the metadata cache), layer
//! tar writing (a snapshot's diff ID), layer unpacking and compression.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::path::Path;
use strata_cache::contenthash::{Selection, checksum_tree};
use strata_cache::metadata::Metadata;
use strata_cache::sys::RecordingFs;
use strata_cache::unpack::{UnpackOptions, unpack_new};

/// A context of `files` files of `size` bytes in 50 directories.
fn make_context(dir: &Path, files: usize, size: usize) -> u64 {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..files {
        let d = dir.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&d).expect("mkdir");
        let mut content = data.clone();
        content.extend_from_slice(format!("{i}").as_bytes());
        std::fs::write(d.join(format!("f{i}")), &content).expect("write");
    }
    (files * size) as u64
}

fn context_hashing(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = make_context(dir.path(), 5_000, 4_096);
    let all = |_: &str, _: bool| Selection::Include;
    let mut g = c.benchmark_group("context");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("hash 5000 files cold", |b| {
        b.iter(|| checksum_tree(dir.path(), &all, None).expect("hash"))
    });
    let state = tempfile::tempdir().expect("tempdir");
    let mut meta = Metadata::open(state.path()).expect("metadata");
    checksum_tree(dir.path(), &all, Some(&mut meta)).expect("warm");
    g.bench_function("hash 5000 files with the metadata cache", |b| {
        b.iter(|| checksum_tree(dir.path(), &all, Some(&mut meta)).expect("hash"))
    });
    g.finish();
}

/// Writing a snapshot as its layer tar and hashing it (the diff ID every committed step
/// computes), from the page cache.
fn layer_tar_writing(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = make_context(dir.path(), 2_000, 16_384);
    let opts = strata_cache::difftar::TarOptions::default();
    let mut g = c.benchmark_group("layer tar");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("2000 files, 32 MB, to a sink", |b| {
        b.iter(|| {
            strata_cache::difftar::write_diff_tar(dir.path(), std::io::sink(), &opts).expect("tar")
        })
    });
    g.bench_function("2000 files, 32 MB, diff ID", |b| {
        b.iter(|| strata_cache::difftar::diff_id(dir.path(), &opts).expect("diff id"))
    });
    g.finish();
}

fn layer_unpacking(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let bytes = make_context(&src, 2_000, 16_384);
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &src).expect("tar");
    let archive = b.into_inner().expect("tar");
    let mut g = c.benchmark_group("unpack");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    let mut n = 0;
    g.bench_function("2000 files, 32 MB", |bench| {
        bench.iter(|| {
            n += 1;
            let dest = dir.path().join(format!("out{n}"));
            unpack_new(
                &archive[..],
                &dest,
                &RecordingFs::default(),
                &UnpackOptions::default(),
            )
            .expect("unpack");
            std::fs::remove_dir_all(&dest).expect("cleanup");
        })
    });
    g.finish();
}

/// Layer compression: a 100 MB, 5,000-file layer tar compressed with the parallel,
/// reproducible compressor (gzip -6, zstd -3), on all cores and on one.
fn layer_compression(c: &mut Criterion) {
    use std::io::Write;
    use strata_cache::compress::{Compression, ParallelCompressor};
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    strata_bench::make_context(&src, 5_000, 20_000, "FROM scratch\n");
    let mut b = tar::Builder::new(Vec::new());
    b.append_dir_all(".", &src).expect("tar");
    let layer = b.into_inner().expect("tar");
    let mut g = c.benchmark_group("compress");
    g.throughput(Throughput::Bytes(layer.len() as u64));
    g.sample_size(10);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    for (name, comp, level) in [
        ("gzip -6", Compression::Gzip, 6),
        ("zstd -3", Compression::Zstd, 3),
    ] {
        let run = || {
            let mut w = ParallelCompressor::new(std::io::sink(), comp, level);
            w.write_all(&layer).expect("compress");
            w.finish().expect("compress")
        };
        g.bench_function(format!("{name}, all cores"), |bench| bench.iter(run));
        g.bench_function(format!("{name}, one core"), |bench| {
            bench.iter(|| one.install(run))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    context_hashing,
    layer_tar_writing,
    layer_unpacking,
    layer_compression
);
criterion_main!(benches);
