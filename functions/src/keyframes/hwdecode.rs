//! Decoding on the GPU (NVDEC, through FFmpeg's CUDA hardware acceleration) when the function
//! runs on a CUDA device, the codec has a CUDA path in this FFmpeg, and the driver opens the
//! device; otherwise the CPU, said once in the log with the reason. A decoded picture is picked
//! by its timestamp on the GPU, and copied to host memory (`to_host`) only when picked or when
//! scene mode needs its pixels, so conversion and encoding are the CPU path's own: the same key
//! frames, the same pictures.
//!
//! Scaling stays on the CPU: FFmpeg scales on the GPU only through libavfilter (`scale_cuda`),
//! which Weir does not link.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;

use weir_gpu::Device;

use crate::FnError;

/// Where a video is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Cpu,
    Cuda(u32),
}

/// The pure decision: a CUDA device and a codec FFmpeg can decode through CUDA mean the GPU;
/// anything else the CPU, with the reason when a GPU was asked for.
pub fn choose(device: Device, codec: &str, codec_has_cuda: bool) -> (Decode, Option<String>) {
    match device {
        Device::Cpu => (Decode::Cpu, None),
        Device::Cuda(n) if codec_has_cuda => (Decode::Cuda(n), None),
        Device::Cuda(n) => (
            Decode::Cpu,
            Some(format!(
                "this FFmpeg has no CUDA (NVDEC) decoding for {codec}: decoding on the CPU instead of cuda:{n}"
            )),
        ),
    }
}

/// Whether `codec` lists a CUDA configuration set up through a device context.
pub fn has_cuda(codec: &ffmpeg::Codec) -> bool {
    (0..)
        .map_while(|i| {
            // SAFETY: `codec` is a valid codec; FFmpeg returns NULL past the last configuration.
            let c = unsafe { ffi::avcodec_get_hw_config(codec.as_ptr(), i) };
            // SAFETY: a non-NULL configuration is a static descriptor owned by FFmpeg.
            (!c.is_null()).then(|| unsafe { *c })
        })
        .any(|c| {
            c.device_type == ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA
                && c.methods & ffi::AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX as i32 != 0
        })
}

/// A CUDA device context of FFmpeg's, one per GPU for the process (opening one costs a context
/// on the device).
struct HwDevice(*mut ffi::AVBufferRef);

// SAFETY: an AVBufferRef to a device context is reference-counted with atomics; FFmpeg's
// decoders take their own references from any thread.
unsafe impl Send for HwDevice {}
// SAFETY: as above; the pointer is only read to make new references.
unsafe impl Sync for HwDevice {}

fn open_device(index: u32) -> Result<HwDevice, String> {
    let name = CString::new(index.to_string()).expect("digits have no NUL");
    let mut dev = ptr::null_mut();
    // The device's primary context, which onnxruntime and the memory meter use too: a context
    // of FFmpeg's own would cost the GPU memory of a second one.
    let mut opts = ptr::null_mut();
    // SAFETY: plain C strings; `opts` is freed below.
    unsafe { ffi::av_dict_set(&mut opts, c"primary_ctx".as_ptr(), c"1".as_ptr(), 0) };
    // SAFETY: `dev` receives a new reference on success; `name` and `opts` outlive the call.
    let rc = unsafe {
        ffi::av_hwdevice_ctx_create(
            &mut dev,
            ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
            name.as_ptr(),
            opts,
            0,
        )
    };
    // SAFETY: frees what av_dict_set made (NULL-safe).
    unsafe { ffi::av_dict_free(&mut opts) };
    if rc < 0 || dev.is_null() {
        return Err(format!(
            "FFmpeg could not open CUDA device {index} ({}): decoding on the CPU",
            ffmpeg::Error::from(rc)
        ));
    }
    Ok(HwDevice(dev))
}

/// The process's device context for GPU `index`, opened on first use; a failure is kept too,
/// so a machine without a driver does not try again for every video.
fn device(index: u32) -> Result<&'static HwDevice, String> {
    static DEVICES: OnceLock<Mutex<HashMap<u32, Result<&'static HwDevice, String>>>> =
        OnceLock::new();
    let mut all = DEVICES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    all.entry(index)
        .or_insert_with(|| open_device(index).map(|d| &*Box::leak(Box::new(d))))
        .clone()
}

/// Logs `what` the first time it is met in this process.
fn say_once(what: &str) {
    static SAID: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let fresh = SAID
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(what.to_string());
    if fresh {
        tracing::info!("keyframes: {what}");
    }
}

/// Sets up `ctx` (not open yet) to decode on the GPU where `device` and `codec` allow it, and
/// says where it will decode.
pub fn set_up(
    ctx: &mut ffmpeg::codec::context::Context,
    device: Device,
    codec_name: &str,
) -> Decode {
    let codec_has_cuda = ffmpeg::decoder::find(ctx.id()).is_some_and(|c| has_cuda(&c));
    let (choice, why) = choose(device, codec_name, codec_has_cuda);
    if let Some(why) = why {
        say_once(&why);
    }
    let Decode::Cuda(index) = choice else {
        return Decode::Cpu;
    };
    match device_ref(index) {
        Ok(r) => {
            // SAFETY: the context is not open; it takes ownership of the new reference.
            unsafe { (*ctx.as_mut_ptr()).hw_device_ctx = r };
            say_once(&format!(
                "decoding {codec_name} on cuda:{index} through NVDEC"
            ));
            choice
        }
        Err(why) => {
            say_once(&why);
            Decode::Cpu
        }
    }
}

fn device_ref(index: u32) -> Result<*mut ffi::AVBufferRef, String> {
    let dev = device(index)?;
    // SAFETY: `dev.0` is a live device context held for the whole process.
    let r = unsafe { ffi::av_buffer_ref(dev.0) };
    if r.is_null() {
        return Err("out of memory referencing the CUDA device: decoding on the CPU".into());
    }
    Ok(r)
}

/// Says once when a decoder set up on the GPU gives a picture in host memory: FFmpeg fell back to
/// its own CPU decoding for the stream (a profile or size NVDEC does not take).
pub fn say_if_fell_back(frame: &ffmpeg::frame::Video) {
    if frame.format() != ffmpeg::format::Pixel::CUDA {
        say_once(&format!(
            "NVDEC did not take a stream ({:?} pictures): FFmpeg decoded it on the CPU, one thread",
            frame.format()
        ));
    }
}

/// Brings a picture decoded on the GPU into host memory (NV12, or P010 for 10-bit), keeping its
/// timestamps and flags; a picture already in host memory is left as it is.
pub fn to_host(frame: &mut ffmpeg::frame::Video) -> Result<(), FnError> {
    if frame.format() != ffmpeg::format::Pixel::CUDA {
        return Ok(());
    }
    let mut host = ffmpeg::frame::Video::empty();
    // SAFETY: both frames are valid; the transfer allocates the host frame's buffers.
    let rc = unsafe { ffi::av_hwframe_transfer_data(host.as_mut_ptr(), frame.as_ptr(), 0) };
    if rc < 0 {
        return Err(FnError::transient(format!(
            "copying a decoded picture from the GPU failed: {}",
            ffmpeg::Error::from(rc)
        )));
    }
    // SAFETY: both frames are valid; only properties (timestamps, key flag) are copied.
    unsafe { ffi::av_frame_copy_props(host.as_mut_ptr(), frame.as_ptr()) };
    *frame = host;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gpu_decodes_only_codecs_with_a_cuda_path_on_a_cuda_device() {
        assert_eq!(choose(Device::Cpu, "h264", true), (Decode::Cpu, None));
        assert_eq!(
            choose(Device::Cuda(1), "hevc", true),
            (Decode::Cuda(1), None)
        );
        let (d, why) = choose(Device::Cuda(0), "theora", false);
        assert_eq!(d, Decode::Cpu);
        assert!(why.unwrap().contains("no CUDA (NVDEC) decoding for theora"));
    }

    #[test]
    fn this_ffmpeg_lists_cuda_for_h264_and_hevc_but_not_for_png() {
        // Debian's FFmpeg is built with NVDEC (`ffmpeg -hwaccels` lists cuda); the decision
        // reads the same tables a GPU machine's FFmpeg gives.
        let find = |id| ffmpeg::decoder::find(id).expect("a decoder");
        assert!(has_cuda(&find(ffmpeg::codec::Id::H264)));
        assert!(has_cuda(&find(ffmpeg::codec::Id::HEVC)));
        assert!(!has_cuda(&find(ffmpeg::codec::Id::PNG)));
    }

    #[test]
    fn without_a_driver_the_device_is_refused_with_a_reason_and_no_panic() {
        if weir_gpu::Inventory::probe().gpu_count() > 0 {
            return; // a GPU machine opens it; this test is for the machines without
        }
        let e = device(0).err().expect("no CUDA device here");
        assert!(e.contains("could not open CUDA device 0"), "{e}");
        // Kept: asking again gives the same answer without trying again.
        assert_eq!(device(0).err(), Some(e));
    }
}
