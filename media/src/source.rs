//! Raw video sources: the lavfi `testsrc2` test pattern and looped media files.

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{Rational, codec, decoder, filter, format, frame};
use ffmpeg_next as ffmpeg;

use crate::{MediaError, Resolution, validate_fps};

/// Where a [`VideoSource`] takes its pictures from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// libavfilter's `testsrc2`: moving colour bars with a burnt-in frame counter, deterministic
    /// per frame index.
    TestPattern,
    /// Any file FFmpeg can demux and decode; its first video stream is used, looped at the end.
    File(PathBuf),
}

/// One raw picture from a [`VideoSource`].
pub struct RawFrame {
    /// Position in the source's output: 0, 1, 2, ... (never resets, also not when a file loops).
    pub index: u64,
    /// The picture: yuv420p at the source's configured size.
    pub frame: frame::Video,
}

impl Clone for RawFrame {
    fn clone(&self) -> Self {
        RawFrame {
            index: self.index,
            frame: self.frame.clone(),
        }
    }
}

impl std::fmt::Debug for RawFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFrame")
            .field("index", &self.index)
            .field("width", &self.frame.width())
            .field("height", &self.frame.height())
            .field("format", &self.frame.format())
            .finish()
    }
}

/// Yields raw yuv420p frames at a configured size and frame rate, as fast as the caller asks.
///
/// The source has no clock: frame `n` is the picture for time `n / fps`, and the caller paces
/// the calls in real time (or not, in tests).
pub struct VideoSource {
    size: Resolution,
    fps: u32,
    next_index: u64,
    kind: Kind,
}

enum Kind {
    Pattern(PatternSource),
    File(Box<FileSource>),
}

impl VideoSource {
    /// Opens a source producing `size` frames at `fps` frames per second.
    pub fn open(spec: &SourceSpec, size: Resolution, fps: u32) -> Result<Self, MediaError> {
        crate::init()?;
        size.validate()?;
        validate_fps(fps)?;
        let kind = match spec {
            SourceSpec::TestPattern => Kind::Pattern(PatternSource::open(size, fps)?),
            SourceSpec::File(path) => Kind::File(Box::new(FileSource::open(path, size, fps)?)),
        };
        Ok(VideoSource {
            size,
            fps,
            next_index: 0,
            kind,
        })
    }

    /// The size of every frame this source yields.
    pub fn size(&self) -> Resolution {
        self.size
    }

    /// The configured frame rate (frame `n` belongs to time `n / fps`).
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Produces the next frame; its index is one more than the previous one's.
    pub fn next_frame(&mut self) -> Result<RawFrame, MediaError> {
        let index = self.next_index;
        let frame = match &mut self.kind {
            Kind::Pattern(p) => p.next(index)?,
            Kind::File(f) => f.next(index)?,
        };
        self.next_index += 1;
        Ok(RawFrame { index, frame })
    }
}

/// Writes `frames` frames of `spec` as a Y4M clip (`C420jpeg`, the layout of [`RawFrame`]).
///
/// Chromium's fake camera plays such a file (`--use-file-for-fake-video-capture`, looped), so a
/// browser sender encodes the same pictures as the Rust sender; its built-in generated camera is
/// a mostly flat picture that x264/VP8 compress to a few hundred kbps, which would make a
/// congestion-control comparison measure the content rather than the controller.
pub fn write_y4m(
    path: &Path,
    spec: &SourceSpec,
    size: Resolution,
    fps: u32,
    frames: u64,
) -> Result<(), MediaError> {
    use std::io::Write;
    let io = |source| MediaError::Write {
        path: path.to_owned(),
        source,
    };
    let mut src = VideoSource::open(spec, size, fps)?;
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write!(
        out,
        "YUV4MPEG2 W{} H{} F{fps}:1 Ip A1:1 C420jpeg\n",
        size.width, size.height
    )
    .map_err(io)?;
    let (w, h) = (size.width as usize, size.height as usize);
    for _ in 0..frames {
        let raw = src.next_frame()?;
        out.write_all(b"FRAME\n").map_err(io)?;
        for (plane, pw, ph) in [
            (0, w, h),
            (1, w.div_ceil(2), h.div_ceil(2)),
            (2, w.div_ceil(2), h.div_ceil(2)),
        ] {
            let stride = raw.frame.stride(plane);
            let data = raw.frame.data(plane);
            for row in 0..ph {
                out.write_all(&data[row * stride..row * stride + pw])
                    .map_err(io)?;
            }
        }
    }
    out.flush().map_err(io)
}

/// `testsrc2` through a libavfilter graph ending in a buffersink.
struct PatternSource {
    graph: filter::Graph,
    description: String,
}

impl PatternSource {
    fn open(size: Resolution, fps: u32) -> Result<Self, MediaError> {
        let description = format!(
            "testsrc2=size={}x{}:rate={fps},format=yuv420p",
            size.width, size.height
        );
        let err = |source| MediaError::Filter {
            graph: description.clone(),
            source,
        };
        let sink = filter::find("buffersink").ok_or_else(|| MediaError::Unavailable {
            what: "filter buffersink".into(),
            hint: "install FFmpeg's libavfilter (Debian: libavfilter8, libavfilter-dev to build)",
        })?;
        let mut graph = filter::Graph::new();
        graph.add(&sink, "out", "").map_err(err)?;
        // The parsed chain's open output is linked to the buffersink named "out".
        graph
            .input("out", 0)
            .and_then(|p| p.parse(&description))
            .map_err(err)?;
        graph.validate().map_err(err)?;
        Ok(PatternSource { graph, description })
    }

    fn next(&mut self, index: u64) -> Result<frame::Video, MediaError> {
        let mut frame = frame::Video::empty();
        let mut sink = self.graph.get("out").ok_or_else(|| MediaError::Filter {
            graph: self.description.clone(),
            source: ffmpeg::Error::Bug,
        })?;
        sink.sink()
            .frame(&mut frame)
            .map_err(|source| MediaError::Filter {
                graph: self.description.clone(),
                source,
            })?;
        // testsrc2 stamps pts = frame number in a 1/rate time base, so output order and index
        // agree; a mismatch would mean a frame was lost inside the graph.
        debug_assert_eq!(frame.pts(), Some(index as i64), "testsrc2 skipped a frame");
        Ok(frame)
    }
}

/// `swscale` context; wrapped only to make it `Send`.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext is plain heap state with no thread affinity; it is owned by exactly one
// FileSource and only used through `&mut self`, so moving it to another thread is sound.
unsafe impl Send for Scaler {}

/// A media file decoded, scaled to the configured size, and looped.
///
/// Frame rate conversion is by index: output frame `n` shows source frame
/// `floor(n * source_fps / fps)`, counted across loops, so source frames are duplicated when the
/// source is slower than `fps` and dropped when faster. Variable-frame-rate files are treated as
/// constant-rate at their average rate.
struct FileSource {
    path: PathBuf,
    size: Resolution,
    /// Output frame rate.
    fps: u32,
    /// Source frame rate (frames per second, as a fraction).
    source_rate: Rational,
    input: format::context::Input,
    stream_index: usize,
    decoder: decoder::Video,
    scaler: Option<(Scaler, Pixel, u32, u32)>,
    /// Source frames decoded so far, over all loops.
    decoded: u64,
    /// Source frames decoded in the current pass through the file.
    decoded_this_pass: u64,
    /// The most recent decoded source frame (number `decoded - 1`), already scaled.
    current: Option<frame::Video>,
}

/// Checks, before anything starts, that a video source path is a regular file: a missing path
/// is [`MediaError::FileNotFound`], one that exists but is a directory, a device (`/dev/zero`),
/// a FIFO or a socket is [`MediaError::NotAFile`], saying which. Symlinks are followed.
pub fn check_video_file(path: &Path) -> Result<(), MediaError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MediaError::FileNotFound {
                path: path.to_path_buf(),
            });
        }
        // Permission errors and the like: FFmpeg's open reports them with the path.
        Err(_) => return Ok(()),
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    let what = if ft.is_dir() {
        "a directory"
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_char_device() {
                "a character device"
            } else if ft.is_block_device() {
                "a block device"
            } else if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else {
                "a special file"
            }
        }
        #[cfg(not(unix))]
        {
            "a special file"
        }
    };
    Err(MediaError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

impl FileSource {
    fn open(path: &Path, size: Resolution, fps: u32) -> Result<Self, MediaError> {
        check_video_file(path)?;
        let (input, stream_index, decoder, source_rate) = open_input(path)?;
        Ok(FileSource {
            path: path.to_path_buf(),
            size,
            fps,
            source_rate: source_rate.unwrap_or(Rational::new(fps as i32, 1)),
            input,
            stream_index,
            decoder,
            scaler: None,
            decoded: 0,
            decoded_this_pass: 0,
            current: None,
        })
    }

    /// Number of the source frame that output frame `index` shows.
    fn source_number(&self, index: u64) -> u64 {
        let num = self.source_rate.numerator().max(1) as u128;
        let den = self.source_rate.denominator().max(1) as u128;
        ((index as u128 * num) / (den * self.fps as u128)) as u64
    }

    fn next(&mut self, index: u64) -> Result<frame::Video, MediaError> {
        let wanted = self.source_number(index);
        while self.current.is_none() || self.decoded <= wanted {
            let raw = self.decode_next()?;
            self.current = Some(self.scale(&raw)?);
            self.decoded += 1;
        }
        // The next output frame may show the same source frame again (duplication); only then
        // is a copy needed.
        let shown_again = self.source_number(index + 1) < self.decoded;
        let frame = if shown_again {
            self.current.clone()
        } else {
            self.current.take()
        };
        frame.ok_or(MediaError::FileRead {
            path: self.path.clone(),
            source: ffmpeg::Error::Bug,
        })
    }

    /// Returns the next decoded frame of the file, starting over at its end.
    fn decode_next(&mut self) -> Result<frame::Video, MediaError> {
        let mut frame = frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.decoded_this_pass += 1;
                    return Ok(frame);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                    self.feed_decoder()?
                }
                Err(ffmpeg::Error::Eof) => self.restart()?,
                Err(source) => {
                    return Err(MediaError::FileRead {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Sends the next packet of the video stream (or end-of-stream) to the decoder.
    fn feed_decoder(&mut self) -> Result<(), MediaError> {
        let mut packet = codec::packet::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => break,
                Ok(()) => continue,
                Err(ffmpeg::Error::Eof) => {
                    return self
                        .decoder
                        .send_eof()
                        .map_err(|source| MediaError::FileRead {
                            path: self.path.clone(),
                            source,
                        });
                }
                Err(source) => {
                    return Err(MediaError::FileRead {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        if let Err(e) = self.decoder.send_packet(&packet) {
            // A damaged packet in a file should not end the stream: the decoder resynchronises
            // at the next keyframe, and a file with nothing decodable is caught in `restart`.
            tracing::debug!(path = %self.path.display(), error = %e, "skipping undecodable packet");
        }
        Ok(())
    }

    /// Goes back to the start of the file after its last frame.
    fn restart(&mut self) -> Result<(), MediaError> {
        if self.decoded_this_pass == 0 {
            return Err(MediaError::NoVideo {
                path: self.path.clone(),
                reason: "no frame of its video stream could be decoded".into(),
            });
        }
        self.decoded_this_pass = 0;
        // Seeking keeps the demuxer and decoder; formats that cannot seek (some raw streams)
        // are reopened instead.
        match self.input.seek(0, ..) {
            Ok(()) => self.decoder.flush(),
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "seek failed, reopening");
                let (input, stream_index, decoder, _) = open_input(&self.path)?;
                self.input = input;
                self.stream_index = stream_index;
                self.decoder = decoder;
            }
        }
        Ok(())
    }

    /// Converts a decoded frame to yuv420p at the configured size.
    fn scale(&mut self, raw: &frame::Video) -> Result<frame::Video, MediaError> {
        let key = (raw.format(), raw.width(), raw.height());
        let size = self.size;
        let err = |source| MediaError::Scale {
            size: size.to_string(),
            source,
        };
        // The decoded size or format can change mid-file (and after a reopen): rebuild then.
        if self
            .scaler
            .as_ref()
            .is_none_or(|(_, f, w, h)| (*f, *w, *h) != key)
        {
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUV420P,
                size.width,
                size.height,
                scaling::Flags::BILINEAR,
            )
            .map_err(err)?;
            self.scaler = Some((Scaler(ctx), key.0, key.1, key.2));
        }
        let mut out = frame::Video::empty();
        if let Some((scaler, ..)) = self.scaler.as_mut() {
            scaler.0.run(raw, &mut out).map_err(err)?;
        }
        Ok(out)
    }
}

/// Opens `path`, finds its first video stream and opens a single-threaded decoder for it;
/// also returns the stream's frame rate if the file states one.
fn open_input(
    path: &Path,
) -> Result<
    (
        format::context::Input,
        usize,
        decoder::Video,
        Option<Rational>,
    ),
    MediaError,
> {
    let input = format::input(path).map_err(|source| MediaError::FileOpen {
        path: path.to_path_buf(),
        source,
    })?;
    let no_video = |reason: String| MediaError::NoVideo {
        path: path.to_path_buf(),
        reason,
    };
    // Copy what is needed out of the stream so its borrow of `input` ends here.
    let (index, rate, parameters) = {
        let stream = input
            .streams()
            .find(|s| s.parameters().medium() == ffmpeg::media::Type::Video)
            .ok_or_else(|| no_video("the file has no video stream".into()))?;
        let rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0);
        (stream.index(), rate, stream.parameters())
    };
    let mut ctx = codec::Context::from_parameters(parameters)
        .map_err(|e| no_video(format!("its codec parameters are unusable ({e})")))?;
    // One thread per media component: the lab machine has 2 cores shared by sender and receiver.
    ctx.set_threading(codec::threading::Config {
        count: 1,
        ..Default::default()
    });
    let decoder = ctx.decoder().video().map_err(|e| {
        no_video(format!(
            "no decoder for its video codec ({e}); install an FFmpeg build that decodes it"
        ))
    })?;
    Ok((input, index, decoder, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, EncodedFrame, Encoder, EncoderConfig};
    use std::io::Write;

    fn luma(f: &frame::Video) -> Vec<u8> {
        let (w, h, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
        let data = f.data(0);
        (0..h)
            .flat_map(|y| data[y * stride..y * stride + w].iter().copied())
            .collect()
    }

    #[test]
    fn a_y4m_clip_plays_back_as_the_pattern() {
        let size = Resolution::new(320, 180);
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.y4m");
        write_y4m(&clip, &SourceSpec::TestPattern, size, 25, 3).unwrap();
        // Header, then per frame "FRAME\n" and the three planes.
        let header = "YUV4MPEG2 W320 H180 F25:1 Ip A1:1 C420jpeg\n".len() as u64;
        let frame = 6 + 320 * 180 * 3 / 2;
        assert_eq!(std::fs::metadata(&clip).unwrap().len(), header + 3 * frame);
        // FFmpeg reads it back as the same pictures (what Chromium's fake camera will show).
        let mut back = VideoSource::open(&SourceSpec::File(clip), size, 25).unwrap();
        let mut pattern = VideoSource::open(&SourceSpec::TestPattern, size, 25).unwrap();
        for _ in 0..3 {
            let (a, b) = (back.next_frame().unwrap(), pattern.next_frame().unwrap());
            assert_eq!(luma(&a.frame), luma(&b.frame), "frame {}", a.index);
        }
    }

    #[test]
    fn test_pattern_is_sized_indexed_and_deterministic() {
        let size = Resolution::new(320, 180);
        let mut a = VideoSource::open(&SourceSpec::TestPattern, size, 25).unwrap();
        let frames: Vec<RawFrame> = (0..8).map(|_| a.next_frame().unwrap()).collect();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.index, i as u64);
            assert_eq!((f.frame.width(), f.frame.height()), (320, 180));
            assert_eq!(f.frame.format(), Pixel::YUV420P);
        }
        assert_ne!(
            luma(&frames[3].frame),
            luma(&frames[4].frame),
            "pattern moves"
        );
        let mut b = VideoSource::open(&SourceSpec::TestPattern, size, 25).unwrap();
        let again: Vec<RawFrame> = (0..8).map(|_| b.next_frame().unwrap()).collect();
        for (x, y) in frames.iter().zip(&again) {
            assert_eq!(
                luma(&x.frame),
                luma(&y.frame),
                "frame {} differs between runs",
                x.index
            );
        }
    }

    #[test]
    fn bad_sizes_and_rates_are_refused() {
        let open =
            |w, h, fps| VideoSource::open(&SourceSpec::TestPattern, Resolution::new(w, h), fps);
        assert!(matches!(
            open(0, 240, 30),
            Err(MediaError::InvalidConfig(_))
        ));
        assert!(matches!(
            open(321, 240, 30),
            Err(MediaError::InvalidConfig(_))
        ));
        assert!(matches!(
            open(320, 240, 0),
            Err(MediaError::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_device_or_folder_source_is_named_for_what_it_is() {
        // Issue 18 finding 9: `/dev/zero` exists, so "does not exist" was wrong.
        let err = check_video_file(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, MediaError::NotAFile { .. }), "{err}");
        assert!(err.to_string().contains("a character device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = check_video_file(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
    }

    #[test]
    fn missing_and_unreadable_files_name_the_path() {
        let missing = PathBuf::from("/nonexistent/clip.mp4");
        let err = VideoSource::open(&SourceSpec::File(missing), Resolution::new(320, 240), 30)
            .err()
            .expect("missing file must fail");
        assert!(matches!(err, MediaError::FileNotFound { .. }));
        assert!(err.to_string().contains("/nonexistent/clip.mp4"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("notes.txt");
        std::fs::write(&junk, "this is not a video\n").unwrap();
        let err = VideoSource::open(
            &SourceSpec::File(junk.clone()),
            Resolution::new(320, 240),
            30,
        )
        .err()
        .expect("text file must fail");
        assert!(
            err.to_string().contains(&junk.display().to_string()),
            "{err}"
        );
    }

    /// `n` frames of testsrc2 at 160x120/`fps`, encoded with `codec`.
    fn clip(codec: Codec, n: usize, fps: u32) -> Vec<EncodedFrame> {
        let size = Resolution::new(160, 120);
        let mut src = VideoSource::open(&SourceSpec::TestPattern, size, fps).unwrap();
        let cfg = EncoderConfig {
            codec,
            size,
            fps,
            target_bps: 300_000,
        };
        let mut enc = Encoder::new(&cfg).unwrap();
        (0..n)
            .flat_map(|_| enc.encode(&mut src.next_frame().unwrap()).unwrap())
            .collect()
    }

    /// Writes VP8 frames as an IVF file (the libvpx container: 32-byte header, then a 12-byte
    /// header per frame).
    fn write_ivf(path: &Path, frames: &[EncodedFrame], fps: u32) {
        let mut out = Vec::new();
        out.extend_from_slice(b"DKIF");
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&32u16.to_le_bytes());
        out.extend_from_slice(b"VP80");
        out.extend_from_slice(&160u16.to_le_bytes());
        out.extend_from_slice(&120u16.to_le_bytes());
        out.extend_from_slice(&fps.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for f in frames {
            out.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&f.frame_index.to_le_bytes());
            out.extend_from_slice(&f.data);
        }
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn ivf_file_is_scaled_and_looped_with_increasing_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.ivf");
        write_ivf(&path, &clip(Codec::Vp8, 12, 10), 10);
        // Same rate as the file: output n shows source frame n mod 12.
        let mut src =
            VideoSource::open(&SourceSpec::File(path), Resolution::new(320, 240), 10).unwrap();
        let frames: Vec<RawFrame> = (0..30).map(|_| src.next_frame().unwrap()).collect();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.index, i as u64);
            assert_eq!(
                (f.frame.width(), f.frame.height(), f.frame.format()),
                (320, 240, Pixel::YUV420P)
            );
        }
        assert_ne!(luma(&frames[0].frame), luma(&frames[1].frame));
        for (a, b) in [(0, 12), (1, 13), (11, 23), (0, 24), (5, 29)] {
            assert_eq!(
                luma(&frames[a].frame),
                luma(&frames[b].frame),
                "frames {a} and {b}"
            );
        }
    }

    #[test]
    fn raw_h264_file_loops_and_converts_frame_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.h264");
        let mut file = std::fs::File::create(&path).unwrap();
        for f in clip(Codec::H264, 10, 25) {
            file.write_all(&f.data).unwrap();
        }
        drop(file);
        // A raw H.264 stream has no container rate; FFmpeg's demuxer assumes 25 fps. At 50 fps
        // out, each source frame is shown twice, so 10 frames loop every 20 outputs.
        let mut src =
            VideoSource::open(&SourceSpec::File(path), Resolution::new(160, 120), 50).unwrap();
        let frames: Vec<RawFrame> = (0..45).map(|_| src.next_frame().unwrap()).collect();
        assert_eq!(frames.last().unwrap().index, 44);
        for (a, b) in [(0, 1), (2, 3), (0, 20), (1, 21), (19, 39), (4, 44)] {
            assert_eq!(
                luma(&frames[a].frame),
                luma(&frames[b].frame),
                "frames {a} and {b}"
            );
        }
        assert_ne!(luma(&frames[1].frame), luma(&frames[2].frame));
    }
}
