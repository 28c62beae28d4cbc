//! Opening a video without trusting it. FFmpeg reads through a custom AVIO over the input's
//! `Source` (a file in the object store is read 32 KiB at a time, never held whole); every read
//! and FFmpeg's interrupt callback check the deadline; the picture size the container declares is
//! checked before any decoder opens (a 1.6 KB MP4 claiming 15360×15360 made FFmpeg allocate
//! gigabytes), and every decoder FFmpeg opens gets `max_pixels`.

use std::io::{Read, Seek, SeekFrom};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use ffmpeg::ffi;
use ffmpeg::format::context::{Input as Demuxer, StreamIo};
use ffmpeg_next as ffmpeg;

use weir_gpu::Device;

use super::hwdecode::{self, Decode};
use crate::{FnError, Input, SourceReader};

/// What a video may be, from the function's params and the invocation's deadline.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_pixels: u64,
    pub max_duration: Duration,
    pub deadline: Instant,
}

/// The facts about a video the manifest reports and the frame pickers use.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub codec: String,
    /// The size as coded, before rotation.
    pub coded: (u32, u32),
    /// Degrees clockwise to turn a decoded picture upright: 0, 90, 180 or 270.
    pub rotation: u32,
    pub fps: Option<f64>,
    /// Seconds, as the container declares it.
    pub duration: Option<f64>,
}

impl Info {
    /// Width and height as displayed, after the rotation.
    pub fn displayed(&self) -> (u32, u32) {
        let (w, h) = self.coded;
        if self.rotation % 180 == 90 {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// An opened video: its demuxer, the chosen stream, and an opened decoder for it.
pub struct Video {
    pub demuxer: Demuxer,
    pub stream: usize,
    pub time_base: ffmpeg::Rational,
    pub info: Info,
    pub decoder: ffmpeg::decoder::Video,
    /// Whether the decoder was set up on the GPU (NVDEC); its pictures then come out in GPU
    /// memory, unless FFmpeg fell back to its own CPU decoding for this stream.
    pub on_gpu: bool,
    reads: Arc<AtomicU8>,
}

const READS_OK: u8 = 0;
const READS_PAST_DEADLINE: u8 = 1;
const READS_FAILED: u8 = 2;

impl Video {
    /// Turns an FFmpeg error met while reading or decoding into the function's error: past the
    /// deadline → timeout, a storage failure → transient, anything else → the input is bad.
    pub fn error(&self, doing: &str, e: ffmpeg::Error) -> FnError {
        classify(&self.reads, doing, e)
    }
}

fn classify(reads: &AtomicU8, doing: &str, e: ffmpeg::Error) -> FnError {
    match reads.load(Ordering::Relaxed) {
        READS_PAST_DEADLINE => {
            FnError::timeout(format!("{doing} stopped at the invocation's deadline"))
        }
        READS_FAILED => FnError::transient(format!("{doing}: reading the object failed")),
        _ if e == ffmpeg::Error::Exit => {
            FnError::timeout(format!("{doing} stopped at the invocation's deadline"))
        }
        _ => FnError::bad_input(format!("{doing}: {e}")),
    }
}

/// The input's reader, failing every read once the deadline has passed.
struct Deadlined {
    inner: SourceReader,
    deadline: Instant,
    state: Arc<AtomicU8>,
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.deadline {
            self.state.store(READS_PAST_DEADLINE, Ordering::Relaxed);
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.inner.read(buf).inspect_err(|_| {
            self.state.store(READS_FAILED, Ordering::Relaxed);
        })
    }
}

impl Seek for Deadlined {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }
}

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Hostile inputs make FFmpeg print screens of warnings; each failure is reported with
        // its reason instead. `WEIR_FFMPEG_LOG=1` brings FFmpeg's own messages back.
        let level = match std::env::var_os("WEIR_FFMPEG_LOG") {
            Some(_) => ffmpeg::util::log::Level::Warning,
            None => ffmpeg::util::log::Level::Fatal,
        };
        ffmpeg::util::log::set_level(level);
    });
}

/// Opens the input's video stream and a decoder for it, on `device` where it can decode there.
/// `keys_only` makes the decoder discard every frame that is not a key frame.
pub fn open(
    input: &Input,
    bounds: &Bounds,
    keys_only: bool,
    device: Device,
) -> Result<Video, FnError> {
    init();
    let reader = input.reader();
    if reader.is_empty() {
        return Err(FnError::bad_input("the video is empty (0 bytes)"));
    }
    let reads = Arc::new(AtomicU8::new(READS_OK));
    let io = StreamIo::from_read_seek(Deadlined {
        inner: reader,
        deadline: bounds.deadline,
        state: reads.clone(),
    })
    .map_err(|e| FnError::transient(format!("cannot set up reading: {e}")))?;
    let mut demuxer = demux(io, bounds.deadline)
        .map_err(|e| classify(&reads, "not a video FFmpeg can read", e))?;
    check_not_still(&demuxer)?;
    check_declared(&demuxer, bounds)?;
    find_stream_info(&mut demuxer, bounds.max_pixels)
        .map_err(|e| classify(&reads, "reading the video's streams failed", e))?;
    let stream = video_stream(&demuxer)?;
    let info = info_of(&demuxer, &stream, bounds)?;
    let (index, time_base) = (stream.index(), stream.time_base());
    let (decoder, decode) = decoder_for(&stream, &info, bounds.max_pixels, keys_only, device)?;
    Ok(Video {
        demuxer,
        stream: index,
        time_base,
        info,
        decoder,
        on_gpu: decode != Decode::Cpu,
        reads,
    })
}

/// `avformat_open_input` over custom I/O with an interrupt callback, without
/// `avformat_find_stream_info` (which decodes frames before their size can be checked).
fn demux(mut io: StreamIo, deadline: Instant) -> Result<Demuxer, ffmpeg::Error> {
    let interrupt = ffmpeg::util::interrupt::new(Box::new(move || Instant::now() >= deadline));
    // SAFETY: the context is allocated here and handed to `avformat_open_input`, which frees
    // it on failure; on success it is owned by the returned `Demuxer` together with the custom
    // I/O and the interrupt's closure, which therefore outlive every use FFmpeg makes of them.
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::error::ENOMEM,
            });
        }
        (*ps).interrupt_callback = interrupt.interrupt;
        (*ps).pb = io.as_mut_ptr();
        (*ps).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        match ffi::avformat_open_input(&mut ps, ptr::null(), ptr::null_mut(), ptr::null_mut()) {
            0 => Ok(Demuxer::wrap_with_custom_io_and_interrupt(
                ps,
                io,
                interrupt.guard,
            )),
            e => Err(ffmpeg::Error::from(e)),
        }
    }
}

/// The picture size a stream declares (0×0 when its header does not say).
fn declared_size(stream: &ffmpeg::format::stream::Stream) -> (u32, u32) {
    let params = stream.parameters();
    // SAFETY: the parameters belong to a stream of the open demuxer.
    let (w, h) = unsafe { ((*params.as_ptr()).width, (*params.as_ptr()).height) };
    (w.max(0) as u32, h.max(0) as u32)
}

fn check_size((w, h): (u32, u32), max_pixels: u64) -> Result<(), FnError> {
    if u64::from(w) * u64::from(h) > max_pixels || w > 16_384 || h > 16_384 {
        return Err(FnError::bad_input(format!(
            "the video declares {w}x{h} pixels, over the limit of {} megapixels \
             (16384 a side); refused before decoding",
            max_pixels as f64 / 1e6
        )));
    }
    Ok(())
}

/// FFmpeg opens a JPEG or PNG as a one-frame "video"; the image functions are for those.
fn check_not_still(demuxer: &Demuxer) -> Result<(), FnError> {
    let name = demuxer.format().name().to_string();
    if name.ends_with("_pipe") || name == "image2" {
        return Err(FnError::bad_input(format!(
            "a still image ({}), not a video",
            name.trim_end_matches("_pipe")
        )));
    }
    Ok(())
}

fn check_declared(demuxer: &Demuxer, bounds: &Bounds) -> Result<(), FnError> {
    for s in demuxer.streams() {
        if s.parameters().medium() == ffmpeg::media::Type::Video {
            check_size(declared_size(&s), bounds.max_pixels)?;
        }
    }
    Ok(())
}

/// `avformat_find_stream_info`, with `max_pixels` for every decoder it opens.
fn find_stream_info(demuxer: &mut Demuxer, max_pixels: u64) -> Result<(), ffmpeg::Error> {
    let limit = max_pixels.min(i32::MAX as u64).to_string();
    // SAFETY: one options dictionary per stream, as the call requires; each is freed after.
    unsafe {
        let ctx = demuxer.as_mut_ptr();
        let n = (*ctx).nb_streams as usize;
        let mut options: Vec<*mut ffi::AVDictionary> = (0..n)
            .map(|_| {
                let mut d = ffmpeg::Dictionary::new();
                d.set("max_pixels", &limit);
                d.disown()
            })
            .collect();
        let r = ffi::avformat_find_stream_info(ctx, options.as_mut_ptr());
        for d in options {
            drop(ffmpeg::Dictionary::own(d));
        }
        if r < 0 {
            Err(ffmpeg::Error::from(r))
        } else {
            Ok(())
        }
    }
}

/// The first video stream that is a moving picture (not a cover image).
fn video_stream(demuxer: &Demuxer) -> Result<ffmpeg::format::stream::Stream<'_>, FnError> {
    let attached = ffmpeg::format::stream::Disposition::ATTACHED_PIC;
    demuxer
        .streams()
        .find(|s| {
            s.parameters().medium() == ffmpeg::media::Type::Video
                && !s.disposition().contains(attached)
        })
        .ok_or_else(|| FnError::bad_input("the file has no video stream (audio only?)"))
}

fn info_of(
    demuxer: &Demuxer,
    stream: &ffmpeg::format::stream::Stream,
    bounds: &Bounds,
) -> Result<Info, FnError> {
    let coded = declared_size(stream);
    check_size(coded, bounds.max_pixels)?;
    if coded.0 == 0 || coded.1 == 0 {
        return Err(FnError::bad_input(
            "the video's picture size cannot be read (a damaged header?)",
        ));
    }
    let seconds = |r: ffmpeg::Rational, n: i64| f64::from(r) * n as f64;
    let duration = Some(demuxer.duration())
        .filter(|d| *d > 0)
        .map(|d| d as f64 / f64::from(ffi::AV_TIME_BASE))
        .or_else(|| {
            Some(stream.duration())
                .filter(|d| *d > 0)
                .map(|d| seconds(stream.time_base(), d))
        });
    if let Some(d) = duration.filter(|d| *d > bounds.max_duration.as_secs_f64()) {
        return Err(FnError::bad_input(format!(
            "the video lasts {d:.1} s, over this function's limit of {:?}",
            bounds.max_duration
        )));
    }
    let fps = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .map(f64::from)
        .find(|f| f.is_finite() && *f > 0.0);
    let codec = stream.parameters().id().name().to_string();
    Ok(Info {
        codec,
        coded,
        rotation: rotation(stream),
        fps,
        duration,
    })
}

/// Clockwise degrees from the stream's display matrix, to the nearest quarter turn.
fn rotation(stream: &ffmpeg::format::stream::Stream) -> u32 {
    use ffmpeg::codec::packet::side_data::Type;
    for side in stream.side_data() {
        let data = side.data();
        if side.kind() == Type::DisplayMatrix && data.len() >= 9 * 4 {
            let mut matrix = [0i32; 9];
            for (m, b) in matrix.iter_mut().zip(data.chunks_exact(4)) {
                *m = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            }
            // SAFETY: a 3×3 matrix of i32, as the function reads.
            let counter = unsafe { ffi::av_display_rotation_get(matrix.as_ptr()) };
            return quarter_turns(-counter);
        }
    }
    0
}

/// Degrees (any sign, possibly NaN) to 0, 90, 180 or 270.
pub fn quarter_turns(degrees: f64) -> u32 {
    if !degrees.is_finite() {
        return 0;
    }
    ((degrees / 90.0).round() as i64).rem_euclid(4) as u32 * 90
}

fn decoder_for(
    stream: &ffmpeg::format::stream::Stream,
    info: &Info,
    max_pixels: u64,
    keys_only: bool,
    device: Device,
) -> Result<(ffmpeg::decoder::Video, Decode), FnError> {
    let failed =
        |e: ffmpeg::Error| FnError::bad_input(format!("cannot decode {}: {e}", info.codec));
    let mut ctx =
        ffmpeg::codec::context::Context::from_parameters(stream.parameters()).map_err(failed)?;
    // SAFETY: plain fields of a codec context that is not open yet.
    unsafe {
        let raw = ctx.as_mut_ptr();
        (*raw).max_pixels = max_pixels.min(i32::MAX as u64) as i64;
        (*raw).pkt_timebase = stream.time_base().into();
    }
    let decode = hwdecode::set_up(&mut ctx, device, &info.codec);
    // Frame threads decode several pictures at once; with key frames only they are
    // independent, so this is where one video uses more than one core. NVDEC runs its own
    // pipeline: one thread feeds it.
    ctx.set_threading(ffmpeg::codec::threading::Config {
        kind: ffmpeg::codec::threading::Type::Frame,
        count: if decode == Decode::Cpu { 0 } else { 1 },
        ..Default::default()
    });
    let mut decoder = ctx.decoder();
    if keys_only {
        decoder.skip_frame(ffmpeg::Discard::NonKey);
    }
    let decoder = decoder.video().map_err(|e| match e {
        ffmpeg::Error::DecoderNotFound => FnError::bad_input(format!(
            "this system's FFmpeg has no decoder for {}",
            info.codec
        )),
        e => failed(e),
    })?;
    Ok((decoder, decode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_snap_to_quarter_turns() {
        assert_eq!(quarter_turns(90.0), 90);
        assert_eq!(quarter_turns(-90.0), 270);
        assert_eq!(quarter_turns(180.0), 180);
        assert_eq!(quarter_turns(-180.0), 180);
        assert_eq!(quarter_turns(359.0), 0);
        assert_eq!(quarter_turns(f64::NAN), 0);
    }

    #[test]
    fn declared_sizes_over_the_limit_are_refused() {
        assert!(check_size((1920, 1080), 33_177_600).is_ok());
        let e = check_size((15360, 15360), 33_177_600).unwrap_err();
        assert!(e.reason().contains("15360x15360"), "{e}");
        assert!(check_size((20_000, 10), 33_177_600).is_err());
    }
}
