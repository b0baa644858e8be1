//! What scoring a received frame costs, per frame at 720p: regenerating the `testsrc2`
//! reference, luma PSNR, luma SSIM. A benchmark (`./lab bench`), never a test.
//!
//! `cargo run -p rtclab-media --example quality_cost [--release]`

use rtclab_media::quality::{Plane, Reference, mse, ssim};
use rtclab_media::{Resolution, SourceSpec, VideoSource};
use std::time::Instant;

fn main() -> Result<(), rtclab_media::MediaError> {
    let size = Resolution::new(1280, 720);
    let n = 90u64;
    let mut src = VideoSource::open(&SourceSpec::TestPattern, size, 30)?;
    let frames: Vec<_> = (0..n).map(|_| src.next_frame()).collect::<Result<_, _>>()?;

    let mut reference = Reference::open(size, 30)?;
    let t = Instant::now();
    let refs: Vec<_> = (0..n)
        .map(|i| reference.frame(i, size))
        .collect::<Result<_, _>>()?;
    let gen_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;

    let t = Instant::now();
    let mut acc = 0.0;
    for (a, b) in frames.iter().zip(refs.iter().skip(1)) {
        acc += mse(Plane::luma(&a.frame), Plane::luma(b)).unwrap_or(0.0);
    }
    let psnr_ms = t.elapsed().as_secs_f64() * 1000.0 / (n - 1) as f64;

    let t = Instant::now();
    for (a, b) in frames.iter().zip(refs.iter().skip(1)) {
        acc += ssim(Plane::luma(&a.frame), Plane::luma(b)).unwrap_or(0.0);
    }
    let ssim_ms = t.elapsed().as_secs_f64() * 1000.0 / (n - 1) as f64;

    let t = Instant::now();
    let mut small = Reference::open(size, 30)?;
    for i in 0..n {
        small.frame(i, Resolution::new(640, 360))?;
    }
    let scaled_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
    println!(
        "quality cost at {size} (ms/frame): reference {gen_ms:.2}, reference scaled to 640x360 \
         {scaled_ms:.2}, PSNR-Y {psnr_ms:.2}, SSIM-Y {ssim_ms:.2} (checksum {acc:.1})"
    );
    Ok(())
}
