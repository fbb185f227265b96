//! Each kernel on every instruction set against the plain scalar loop a user would write,
//! in GB/s of input, on a large array (16 Mi elements: memory-bound) and a cache-resident
//! one (8 Ki elements). The element-wise groups also time `memcpy` of the same bytes into
//! the same output (`copy_from_slice`): the memory-bandwidth ceiling, measured in the same
//! run.
//!
//! `cargo bench -p mlpipe-plugin-simd --bench kernels [-- FILTER]`

use std::hint::black_box;

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use mlpipe_plugin_api::arrow::buffer::NullBuffer;
use mlpipe_plugin_simd::{Element, Isa, Standardize};

const LARGE: usize = 16 << 20;
const CACHED: usize = 8 << 10;

/// Values like a standardized feature, and a validity with about 2 % nulls.
fn data<E: Element>(len: usize, seed: u64) -> (Vec<E>, NullBuffer) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let values = (0..len)
        .map(|_| E::from_f64((next() >> 11) as f64 / (1u64 << 50) as f64 - 4.0))
        .collect();
    let valid: Vec<bool> = (0..len).map(|_| next() % 50 != 0).collect();
    (values, NullBuffer::from(valid))
}

fn group<'a>(
    c: &'a mut Criterion,
    name: String,
    len: usize,
    size: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes((len * size) as u64));
    if len == LARGE {
        group.sample_size(10);
    }
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(2));
    group
}

/// Times `kernel` on every instruction set, after `plain` and (when given) `memcpy`.
fn compare(
    mut group: BenchmarkGroup<'_, WallTime>,
    mut plain: impl FnMut(),
    mut kernel: impl FnMut(Isa),
    memcpy: Option<&mut dyn FnMut()>,
) {
    if let Some(memcpy) = memcpy {
        group.bench_function("memcpy", |b| b.iter(&mut *memcpy));
    }
    group.bench_function("plain_loop", |b| b.iter(&mut plain));
    for isa in Isa::available() {
        group.bench_function(isa.name(), |b| b.iter(|| kernel(isa)));
    }
    group.finish();
}

fn elementwise<E: Element>(c: &mut Criterion, type_name: &str, len: usize) {
    let size = size_of::<E>();
    let label = if len == LARGE { "large" } else { "cached" };
    let (x, nulls) = data::<E>(len, 7);
    let mut out = vec![E::ZERO; len];
    let e = E::from_f64;
    let params = Standardize {
        fill: e(0.1),
        mean: e(0.5),
        scale: e(2.0),
        fill_nan: false,
    };

    let mut copy = vec![E::ZERO; len];
    let mut memcpy = || copy.copy_from_slice(black_box(&x));
    let name = format!("fill_standardize/{type_name}/{label}");
    let mut plain_out = out.clone();
    compare(
        group(c, name, len, size),
        || {
            for ((o, &v), valid) in plain_out.iter_mut().zip(black_box(&x)).zip(nulls.iter()) {
                let v = if valid { v.to_f64() } else { 0.1 };
                *o = E::from_f64((v - 0.5) / 2.0);
            }
        },
        |isa| {
            mlpipe_plugin_simd::fill_standardize(isa, black_box(&x), Some(&nulls), params, &mut out)
        },
        Some(&mut memcpy),
    );

    let (scale, offset) = mlpipe_plugin_simd::min_max_params(e(-4.0), e(4.0), e(0.0), e(1.0));
    let name = format!("min_max_scale/{type_name}/{label}");
    compare(
        group(c, name, len, size),
        || {
            for (o, &v) in plain_out.iter_mut().zip(black_box(&x)) {
                *o = E::from_f64(v.to_f64() * scale.to_f64() + offset.to_f64());
            }
        },
        |isa| mlpipe_plugin_simd::affine(isa, black_box(&x), scale, offset, &mut out),
        Some(&mut memcpy),
    );

    let name = format!("clip/{type_name}/{label}");
    compare(
        group(c, name, len, size),
        || {
            for (o, &v) in plain_out.iter_mut().zip(black_box(&x)) {
                *o = E::from_f64(v.to_f64().clamp(-1.0, 1.0));
            }
        },
        |isa| mlpipe_plugin_simd::clip(isa, black_box(&x), e(-1.0), e(1.0), &mut out),
        Some(&mut memcpy),
    );

    // log1p of non-negative values, so that neither side takes a shortcut for NaN.
    let x: Vec<E> = x.iter().map(|v| E::from_f64(v.to_f64().abs())).collect();
    let name = format!("log1p/{type_name}/{label}");
    compare(
        group(c, name, len, size),
        || {
            for (o, &v) in plain_out.iter_mut().zip(black_box(&x)) {
                *o = E::from_f64(v.to_f64().ln_1p());
            }
        },
        |isa| mlpipe_plugin_simd::log1p(isa, black_box(&x), &mut out),
        Some(&mut memcpy),
    );
}

fn reductions<E: Element>(c: &mut Criterion, type_name: &str, len: usize) {
    let size = size_of::<E>();
    let label = if len == LARGE { "large" } else { "cached" };
    let (x, nulls) = data::<E>(len, 7);
    let (y, _) = data::<E>(len, 11);

    compare(
        group(c, format!("moments/{type_name}/{label}"), len, size),
        || {
            // Welford's streaming update, the usual one-pass loop.
            let (mut count, mut mean, mut m2) = (0.0_f64, 0.0_f64, 0.0_f64);
            for (&v, valid) in black_box(&x).iter().zip(nulls.iter()) {
                let v = v.to_f64();
                if valid && !v.is_nan() {
                    count += 1.0;
                    let delta = v - mean;
                    mean += delta / count;
                    m2 += delta * (v - mean);
                }
            }
            black_box((count, mean, m2));
        },
        |isa| {
            black_box(mlpipe_plugin_simd::moments(
                isa,
                black_box(&x),
                Some(&nulls),
            ));
        },
        None,
    );

    compare(
        group(c, format!("min_max/{type_name}/{label}"), len, size),
        || {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for (&v, valid) in black_box(&x).iter().zip(nulls.iter()) {
                let v = v.to_f64();
                if valid && v < lo {
                    lo = v;
                }
                if valid && v > hi {
                    hi = v;
                }
            }
            black_box((lo, hi));
        },
        |isa| {
            black_box(mlpipe_plugin_simd::min_max(
                isa,
                black_box(&x),
                Some(&nulls),
            ));
        },
        None,
    );

    compare(
        group(c, format!("l2_norm/{type_name}/{label}"), len, size),
        || {
            let sum: f64 = black_box(&x).iter().map(|v| v.to_f64() * v.to_f64()).sum();
            black_box(sum.sqrt());
        },
        |isa| {
            black_box(mlpipe_plugin_simd::l2_norm(isa, black_box(&x), None));
        },
        None,
    );

    compare(
        group(c, format!("dot/{type_name}/{label}"), 2 * len, size),
        || {
            let sum: f64 = black_box(&x)
                .iter()
                .zip(&y)
                .map(|(a, b)| a.to_f64() * b.to_f64())
                .sum();
            black_box(sum);
        },
        |isa| {
            black_box(mlpipe_plugin_simd::dot(isa, black_box(&x), None, &y, None));
        },
        None,
    );
}

fn kernels(c: &mut Criterion) {
    for len in [LARGE, CACHED] {
        elementwise::<f64>(c, "f64", len);
        elementwise::<f32>(c, "f32", len);
        reductions::<f64>(c, "f64", len);
        reductions::<f32>(c, "f32", len);
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
