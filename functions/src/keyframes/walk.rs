//! Reading a video and handing over the frames a mode picks. Key frames mode sends only packets
//! flagged key to a decoder that also discards non-key frames (VP9's decoder ignores the discard,
//! so the packet filter is what decodes nothing else); interval mode seeks to the key frame at or
//! before each point when that is ahead of where decoding stands; scene mode decodes every frame.

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use super::open::Video;
use super::params::Mode;
use super::pick::{self, Intervals, Scenes};
use crate::{ExecCtx, FnError};

/// A frame picked, with its time in seconds.
pub struct Picked {
    pub pts: f64,
    pub key: bool,
    pub frame: ffmpeg::frame::Video,
}

/// How the walk ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// The file stopped before its declared end (or its data could not be read to the end).
    pub truncated: bool,
    /// `max_frames` was reached before the end.
    pub capped: bool,
    /// Packets the decoder refused (damaged data); decoding went on at the next key frame.
    pub damaged: usize,
}

/// Everything a walk needs besides the video.
pub struct Walk<'a> {
    pub mode: Mode,
    pub max_frames: usize,
    pub max_duration: f64,
    pub ctx: &'a ExecCtx,
    pub index: usize,
    /// Reduces a frame to the grey grid scene mode compares.
    pub grid: &'a mut dyn FnMut(&ffmpeg::frame::Video) -> Result<Vec<u8>, FnError>,
    /// Takes each picked frame.
    pub take: &'a mut dyn FnMut(Picked) -> Result<(), FnError>,
}

enum Chooser {
    Keys,
    Every(Intervals),
    Cuts(Scenes),
}

/// Reads `video` to its end (or the cap) and hands each picked frame to `w.take`.
pub fn walk(video: &mut Video, mut w: Walk<'_>) -> Result<Ended, FnError> {
    let mut chooser = match w.mode {
        Mode::Keyframes => Chooser::Keys,
        Mode::Interval(d) => Chooser::Every(Intervals::new(d.as_secs_f64(), video.info.fps)),
        Mode::Scene(t) => Chooser::Cuts(Scenes::new(t)),
    };
    let tb = f64::from(video.time_base);
    let mut state = State {
        picked: 0,
        last_pts: None,
        read_until: None,
        ended: Ended::default(),
    };
    let mut seek_checked_for = f64::NAN;
    let mut frame = ffmpeg::frame::Video::empty();
    loop {
        w.ctx.check(w.index)?;
        // A fresh packet per read: `av_read_frame` fills the packet it is given without
        // releasing what it held, so reusing one leaked every packet's data (a 200 MB video
        // kept 230 MB resident).
        let mut packet = ffmpeg::Packet::empty();
        if let Chooser::Every(iv) = &chooser
            && iv.target() != seek_checked_for
        {
            seek_checked_for = iv.target();
            seek_if_ahead(video, iv.target(), state.last_pts)?;
        }
        match packet.read(&mut video.demuxer) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => {
                let err = video.error("reading the video", e);
                if err.kind() != crate::ErrorKind::BadInput {
                    return Err(err);
                }
                // Data the index promised is not there: keep what was decoded before.
                state.ended.truncated = true;
                break;
            }
        }
        if packet.stream() != video.stream {
            continue;
        }
        let pts = packet.pts().or(packet.dts()).map(|t| t as f64 * tb);
        if let Some(t) = pts {
            if t > w.max_duration {
                return Err(FnError::bad_input(format!(
                    "the video runs past this function's limit of {:.0} s",
                    w.max_duration
                )));
            }
            let end = t + packet.duration().max(0) as f64 * tb;
            state.read_until = Some(state.read_until.map_or(end, |u: f64| u.max(end)));
        }
        if matches!(chooser, Chooser::Keys) && !packet.is_key() {
            continue;
        }
        // The send/receive contract: a decoder whose output is full answers EAGAIN until its
        // frames are taken, and then accepts the packet.
        for _ in 0..2 {
            let again = match video.decoder.send_packet(&packet) {
                Ok(()) => false,
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => true,
                Err(e) => {
                    // A damaged packet: the decoder picks up again at the next key frame.
                    tracing::debug!(error = %e, "a packet could not be decoded");
                    state.ended.damaged += 1;
                    false
                }
            };
            if drain(video, &mut frame, &mut chooser, &mut state, &mut w, tb)? {
                state.ended.capped = true;
                return Ok(state.ended);
            }
            if !again {
                break;
            }
        }
    }
    let _ = video.decoder.send_eof();
    if drain(video, &mut frame, &mut chooser, &mut state, &mut w, tb)? {
        state.ended.capped = true;
        return Ok(state.ended);
    }
    let declared = video.info.duration;
    state.ended.truncated |= pick::cut_short(state.read_until, declared, video.info.fps);
    if state.picked == 0 {
        return Err(FnError::bad_input(if state.ended.truncated {
            "the video ends before its first picture could be decoded (a truncated file?)"
        } else {
            "no picture in the video could be decoded"
        }));
    }
    Ok(state.ended)
}

struct State {
    picked: usize,
    last_pts: Option<f64>,
    read_until: Option<f64>,
    ended: Ended,
}

/// Takes every frame the decoder has ready. Returns true once `max_frames` were picked.
fn drain(
    video: &mut Video,
    frame: &mut ffmpeg::frame::Video,
    chooser: &mut Chooser,
    state: &mut State,
    w: &mut Walk<'_>,
    tb: f64,
) -> Result<bool, FnError> {
    while video.decoder.receive_frame(frame).is_ok() {
        // A GPU picture is copied to host memory only where its pixels are needed: for the
        // scene grid, and once picked. Timestamps and flags are read on the GPU frame.
        if video.on_gpu {
            super::hwdecode::say_if_fell_back(frame);
        }
        let step = video.info.fps.map_or(0.0, |f| 1.0 / f);
        let pts = frame
            .timestamp()
            .map(|t| t as f64 * tb)
            .unwrap_or_else(|| state.last_pts.map_or(0.0, |p| p + step));
        state.last_pts = Some(pts);
        let picked = match chooser {
            Chooser::Keys => true,
            Chooser::Every(iv) => iv.offer(pts),
            Chooser::Cuts(sc) => {
                super::hwdecode::to_host(frame)?;
                sc.offer((w.grid)(frame)?).0
            }
        };
        if !picked {
            continue;
        }
        if state.picked == w.max_frames {
            return Ok(true);
        }
        state.picked += 1;
        super::hwdecode::to_host(frame)?;
        let key = frame.is_key();
        let taken = std::mem::replace(frame, ffmpeg::frame::Video::empty());
        (w.take)(Picked {
            pts,
            key,
            frame: taken,
        })?;
    }
    Ok(false)
}

/// Seeks to the key frame at or before `target` when the index has one ahead of the last frame
/// decoded; otherwise decoding forward is cheaper. Without an index nothing is sought.
fn seek_if_ahead(video: &mut Video, target: f64, last: Option<f64>) -> Result<(), FnError> {
    let tb = f64::from(video.time_base);
    // SAFETY: the stream belongs to the open demuxer; the entry is read before any other call.
    let key = unsafe {
        let st = *(*video.demuxer.as_ptr()).streams.add(video.stream);
        let ts = (target / tb) as i64;
        let e = ffi::avformat_index_get_entry_from_timestamp(st, ts, ffi::AVSEEK_FLAG_BACKWARD);
        (!e.is_null()).then(|| (*e).timestamp as f64 * tb)
    };
    let Some(key) = key else { return Ok(()) };
    if last.is_some_and(|l| key <= l) || (last.is_none() && key <= 0.0) {
        return Ok(());
    }
    // At most the target: the seek lands on the key frame at or before it, which is `key`.
    let us = (target * f64::from(ffi::AV_TIME_BASE)).ceil() as i64;
    video
        .demuxer
        .seek(us, ..us)
        .map_err(|e| video.error("seeking in the video", e))?;
    video.decoder.flush();
    Ok(())
}
