//! Hot paths of the local store: context hashing (cold and through the metadata cache) and
//! layer unpacking.

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

criterion_group!(benches, context_hashing, layer_unpacking);
criterion_main!(benches);
