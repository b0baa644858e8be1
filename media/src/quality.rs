//! Picture quality of a decoded frame against its source: PSNR and SSIM on the luma (Y) plane,
//! and the reference itself, regenerated from `testsrc2` by frame index.
//!
//! Both metrics are computed by straightforward code here rather than libavfilter's
//! `psnr`/`ssim` filters: a two-input filter graph per comparison is more plumbing than the
//! arithmetic, and this code is unit-tested against known inputs. Only Y is compared: it carries
//! the detail the eye (and the codecs' rate control) cares about, and it is what "PSNR" means in
//! most WebRTC quality reports.
//!
//! When the decoded picture is smaller than the source (the sender scaled its resolution down),
//! the reference is scaled to the decoded size with swscale's bicubic filter and compared there:
//! the number then says how good the picture is *at the size that was sent*, not how much detail
//! the downscale itself threw away.

use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use crate::{MediaError, Resolution, SourceSpec, VideoSource};

/// PSNR reported for two identical planes (the true value is infinite, which JSON cannot hold).
pub const PSNR_CAP_DB: f64 = 100.0;

/// Peak sample value of 8-bit video.
const PEAK: f64 = 255.0;

/// PSNR and SSIM of one decoded frame against its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Luma PSNR, dB, at most [`PSNR_CAP_DB`].
    pub psnr_y: f64,
    /// Luma SSIM, 0..1 (1 = identical).
    pub ssim_y: f64,
}

/// One 8-bit plane: `width` × `height` samples, rows `stride` bytes apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// The samples.
    pub data: &'a [u8],
    /// Bytes from the start of one row to the next.
    pub stride: usize,
    /// Samples per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl<'a> Plane<'a> {
    /// The luma plane of a yuv420p frame.
    pub fn luma(f: &'a frame::Video) -> Self {
        Plane {
            data: f.data(0),
            stride: f.stride(0),
            width: f.width() as usize,
            height: f.height() as usize,
        }
    }

    fn row(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }

    fn check(&self) -> bool {
        self.height == 0
            || (self.stride >= self.width
                && self.data.len() >= (self.height - 1) * self.stride + self.width)
    }
}

/// Mean squared error between two planes of the same size (`None` if sizes differ).
pub fn mse(a: Plane<'_>, b: Plane<'_>) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || !a.check() || !b.check() {
        return None;
    }
    let n = a.width * a.height;
    if n == 0 {
        return None;
    }
    let mut sum: u64 = 0;
    for y in 0..a.height {
        // Per row in u32: 255² × 8192 samples still fits.
        let row: u32 = a
            .row(y)
            .iter()
            .zip(b.row(y))
            .map(|(&p, &q)| {
                let d = u32::from(p.abs_diff(q));
                d * d
            })
            .sum();
        sum += u64::from(row);
    }
    Some(sum as f64 / n as f64)
}

/// PSNR in dB for 8-bit samples from a mean squared error, capped at [`PSNR_CAP_DB`].
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        return PSNR_CAP_DB;
    }
    (10.0 * (PEAK * PEAK / mse).log10()).min(PSNR_CAP_DB)
}

/// SSIM of two planes of the same size (`None` if sizes differ or they are smaller than 8×8).
///
/// The windowing of x264 and libavfilter's `ssim` filter (8×8 windows stepped by 4 samples,
/// sums built from 4×4 blocks, uniform weights), the formula and constants of Wang et al. 2004
/// (C1 = (0.01·255)², C2 = (0.03·255)²), and the mean over all windows.
pub fn ssim(a: Plane<'_>, b: Plane<'_>) -> Option<f64> {
    if (a.width, a.height) != (b.width, b.height) || !a.check() || !b.check() {
        return None;
    }
    let (bw, bh) = (a.width / 4, a.height / 4);
    if bw < 2 || bh < 2 {
        return None;
    }
    // Per 4×4 block: Σa, Σb, Σa²+Σb², Σab.
    let mut blocks = vec![[0u32; 4]; bw * bh];
    for by in 0..bh {
        for y in by * 4..by * 4 + 4 {
            let (ra, rb) = (a.row(y), b.row(y));
            for bx in 0..bw {
                let s = &mut blocks[by * bw + bx];
                for x in bx * 4..bx * 4 + 4 {
                    let (p, q) = (u32::from(ra[x]), u32::from(rb[x]));
                    s[0] += p;
                    s[1] += q;
                    s[2] += p * p + q * q;
                    s[3] += p * q;
                }
            }
        }
    }
    let c1 = (0.01 * PEAK).powi(2);
    let c2 = (0.03 * PEAK).powi(2);
    let mut total = 0.0;
    let mut windows = 0u64;
    for by in 0..bh - 1 {
        for bx in 0..bw - 1 {
            let mut w = [0f64; 4];
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let s = &blocks[(by + dy) * bw + bx + dx];
                for (acc, v) in w.iter_mut().zip(s) {
                    *acc += f64::from(*v);
                }
            }
            // Means, variances and covariance over the window's 64 samples.
            let [s1, s2, ss, s12] = w.map(|v| v / 64.0);
            let vars = ss - s1 * s1 - s2 * s2;
            let covar = s12 - s1 * s2;
            total += (2.0 * s1 * s2 + c1) * (2.0 * covar + c2)
                / ((s1 * s1 + s2 * s2 + c1) * (vars + c2));
            windows += 1;
        }
    }
    Some(total / windows as f64)
}

/// PSNR and SSIM of the luma planes of two yuv420p frames of the same size.
pub fn compare(reference: &frame::Video, decoded: &frame::Video) -> Option<Quality> {
    let (r, d) = (Plane::luma(reference), Plane::luma(decoded));
    Some(Quality {
        psnr_y: psnr_from_mse(mse(r, d)?),
        ssim_y: ssim(r, d)?,
    })
}

/// `swscale` context; wrapped only to make it `Send` (as in the sources).
struct Scaler(scaling::Context);

// SAFETY: an SwsContext is plain heap state with no thread affinity; it is owned by exactly one
// Reference and only used through `&mut self`, so moving it to another thread is sound.
unsafe impl Send for Scaler {}

/// Regenerates `testsrc2` frames by index, as the sender's source made them, for comparison.
///
/// `testsrc2` is deterministic per frame index, but a libavfilter source cannot seek: asking
/// for frame `n` runs the pattern forward from the last frame asked for (frames in between are
/// generated and dropped). Asking for an earlier index restarts the pattern.
pub struct Reference {
    size: Resolution,
    fps: u32,
    source: VideoSource,
    /// Index of the next frame `source` yields.
    next: u64,
    scaler: Option<(Scaler, u32, u32)>,
}

impl Reference {
    /// A reference for a `testsrc2` source of `size` at `fps`.
    pub fn open(size: Resolution, fps: u32) -> Result<Self, MediaError> {
        Ok(Reference {
            size,
            fps,
            source: VideoSource::open(&SourceSpec::TestPattern, size, fps)?,
            next: 0,
            scaler: None,
        })
    }

    /// The source size and rate this reference regenerates.
    pub fn matches(&self, size: Resolution, fps: u32) -> bool {
        self.size == size && self.fps == fps
    }

    /// Source frame `index`, scaled to `out` if that differs from the source size.
    pub fn frame(&mut self, index: u64, out: Resolution) -> Result<frame::Video, MediaError> {
        if index < self.next {
            self.source = VideoSource::open(&SourceSpec::TestPattern, self.size, self.fps)?;
            self.next = 0;
        }
        let mut raw = self.source.next_frame()?;
        while raw.index < index {
            raw = self.source.next_frame()?;
        }
        self.next = raw.index + 1;
        if out == self.size {
            return Ok(raw.frame);
        }
        let err = |source| MediaError::Scale {
            size: out.to_string(),
            source,
        };
        if self
            .scaler
            .as_ref()
            .is_none_or(|(_, w, h)| (*w, *h) != (out.width, out.height))
        {
            let ctx = scaling::Context::get(
                Pixel::YUV420P,
                self.size.width,
                self.size.height,
                Pixel::YUV420P,
                out.width,
                out.height,
                scaling::Flags::BICUBIC,
            )
            .map_err(err)?;
            self.scaler = Some((Scaler(ctx), out.width, out.height));
        }
        let mut scaled = frame::Video::empty();
        if let Some((scaler, ..)) = self.scaler.as_mut() {
            scaler.0.run(&raw.frame, &mut scaled).map_err(err)?;
        }
        Ok(scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: &[u8], width: usize, height: usize) -> Plane<'_> {
        Plane {
            data,
            stride: width,
            width,
            height,
        }
    }

    #[test]
    fn identical_planes_are_capped() {
        let a: Vec<u8> = (0..64 * 48).map(|i| (i * 7 % 251) as u8).collect();
        let p = plane(&a, 64, 48);
        assert_eq!(mse(p, p), Some(0.0));
        assert_eq!(psnr_from_mse(0.0), PSNR_CAP_DB);
        let s = ssim(p, p).expect("ssim");
        assert!((s - 1.0).abs() < 1e-12, "ssim {s}");
    }

    #[test]
    fn known_error_gives_expected_psnr() {
        // Every sample off by ±4 (alternating): MSE = 16, PSNR = 10·log10(255²/16) = 36.09 dB.
        let a = vec![128u8; 64 * 64];
        let b: Vec<u8> = (0..64 * 64)
            .map(|i| if i % 2 == 0 { 132 } else { 124 })
            .collect();
        let m = mse(plane(&a, 64, 64), plane(&b, 64, 64)).expect("mse");
        assert_eq!(m, 16.0);
        let db = psnr_from_mse(m);
        assert!((db - 36.0896).abs() < 1e-3, "psnr {db}");
        // Half the samples off by 10: MSE = 50, PSNR = 31.14 dB.
        let c: Vec<u8> = (0..64 * 64)
            .map(|i| if i % 2 == 0 { 138 } else { 128 })
            .collect();
        let db = psnr_from_mse(mse(plane(&a, 64, 64), plane(&c, 64, 64)).expect("mse"));
        assert!((db - 31.1411).abs() < 1e-3, "psnr {db}");
    }

    #[test]
    fn seeded_noise_lowers_psnr_and_ssim_as_expected() {
        // Uniform noise in [-8, 8] on a textured plane: E[d²] = ((2·8+1)² − 1) / 12 = 24,
        // PSNR ≈ 34.3 dB; SSIM stays high but below 1 and above a plain shift's floor.
        let (w, h) = (320, 240);
        let a: Vec<u8> = (0..w * h)
            .map(|i| (64 + (i % w) / 3 + (i / w) / 2) as u8)
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let b: Vec<u8> = a
            .iter()
            .map(|&v| {
                // xorshift64*: a fixed, seeded noise so the expected value is reproducible.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let r = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 17;
                (i32::from(v) + r as i32 - 8).clamp(0, 255) as u8
            })
            .collect();
        let m = mse(plane(&a, w, h), plane(&b, w, h)).expect("mse");
        assert!((m - 24.0).abs() < 0.5, "mse {m}");
        let db = psnr_from_mse(m);
        assert!((db - 34.33).abs() < 0.1, "psnr {db}");
        let s = ssim(plane(&a, w, h), plane(&b, w, h)).expect("ssim");
        assert!(s > 0.5 && s < 0.99, "ssim {s}");
    }

    #[test]
    fn sizes_must_match() {
        let a = vec![0u8; 64 * 64];
        assert!(mse(plane(&a, 64, 64), plane(&a, 32, 64)).is_none());
        assert!(ssim(plane(&a, 64, 64), plane(&a, 64, 32)).is_none());
        assert!(ssim(plane(&a, 4, 4), plane(&a, 4, 4)).is_none());
    }

    #[test]
    fn regenerated_reference_equals_the_source() {
        let size = Resolution::new(320, 240);
        let mut src = VideoSource::open(&SourceSpec::TestPattern, size, 30).expect("source");
        let frames: Vec<_> = (0..12).map(|_| src.next_frame().expect("frame")).collect();
        let mut r = Reference::open(size, 30).expect("reference");
        for i in [3u64, 4, 11, 2] {
            let f = r.frame(i, size).expect("reference frame");
            let q = compare(&frames[i as usize].frame, &f).expect("same size");
            assert_eq!(q.psnr_y, PSNR_CAP_DB, "frame {i}");
        }
        // A different frame is really different (the pattern moves every frame).
        let other = r.frame(5, size).expect("frame 5");
        let q = compare(&frames[6].frame, &other).expect("same size");
        assert!(q.psnr_y < 40.0, "frames 5 and 6 look alike: {q:?}");
        // Scaled to a smaller size it is still comparable.
        let small = r
            .frame(8, Resolution::new(160, 120))
            .expect("scaled reference");
        assert_eq!((small.width(), small.height()), (160, 120));
    }
}
