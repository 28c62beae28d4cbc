//! A JPEG decoded in two bands of rows at once, when a core is idle.
//!
//! The decode is half of a photo's time, and its Huffman data has no entry point but the top (a
//! photo without restart markers). So the lower band's decoder reads through the upper band's
//! rows without making their pixels — about two thirds of the cost of decoding them — while the
//! input's own thread decodes the upper band. The bands make exactly the pixels one decode makes
//! (libjpeg-turbo skips rows with their upsampling context; `tests` compares every fixture), so
//! unlike a resize's strips the cut may follow the load: on a busy machine nothing is cut and no
//! work is done twice.

use std::ops::Range;

use turbojpeg::{DecompressHeader, PixelFormat, ScalingFactor};
use turbojpeg_sys as raw;

use crate::spread;

/// The upper band's share of the rows, in eighths. Side by side the two decoders slow each other
/// (they share the caches), and of the cuts measured (0.5 to 0.7 of the rows) about 0.65 took
/// the least time (`benches/RESULTS.md`).
const UPPER_EIGHTHS: usize = 5;

/// A picture shorter than this is not worth a second decoder.
const MIN_ROWS: usize = 64;

/// Where the lower band starts, for a decode `height` rows tall; `None` when it is not worth
/// cutting: a short picture, or one whose whole entropy data is decoded before its first row
/// (progressive, lossless or arithmetic-coded JPEGs), where a second decoder would repeat it.
pub fn cut(height: usize, header: &DecompressHeader) -> Option<usize> {
    let sequential = !(header.is_progressive || header.is_lossless || header.is_arithmetic);
    (sequential && height >= MIN_ROWS).then_some(height * UPPER_EIGHTHS / 8)
}

/// One decode at `scale` into `format`, `width`x`height` pixels once scaled: what its bands
/// share.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub data: &'a [u8],
    pub scale: ScalingFactor,
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
}

impl Job<'_> {
    fn pitch(&self) -> usize {
        self.width * self.format.size()
    }
}

/// The decoded pixels: in two bands when the picture is worth cutting and `cores` has one idle,
/// else in one.
pub fn decode(
    job: Job<'_>,
    header: &DecompressHeader,
    cores: Option<&'static weir_models::cores::Cores>,
) -> Result<Vec<u8>, String> {
    let mut pixels = vec![0u8; job.pitch() * job.height];
    let work = job.width as u64 * job.height as u64;
    let help = cut(job.height, header)
        .zip(cores)
        .map(|(at, cores)| (at, spread::Helpers::take(cores, 2, work)))
        .filter(|(_, help)| help.count() > 0);
    let Some((at, help)) = help else {
        rows(job, 0..job.height, &mut pixels)?;
        return Ok(pixels);
    };
    let (upper, lower) = pixels.split_at_mut(at * job.pitch());
    let bands: Vec<spread::Borrowed<'_, Result<(), String>>> = vec![
        Box::new(move || rows(job, 0..at, upper)),
        Box::new(move || rows(job, at..job.height, lower)),
    ];
    // Either band's error is the decode's; the lower one's first, as it read the whole stream.
    let mut results = help.run_borrowed(bands).into_iter().rev();
    results.try_for_each(|band| band)?;
    Ok(pixels)
}

/// The decompressor's handle, destroyed when dropped.
struct Handle(raw::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: made by tj3Init and destroyed once, here.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn decompressor() -> Result<Handle, String> {
        // SAFETY: tj3Init takes a plain integer and returns a handle or null.
        let h = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as libc::c_int) };
        if h.is_null() {
            return Err("libjpeg-turbo could not make a decompressor".into());
        }
        Ok(Handle(h))
    }

    fn check(&self, rc: libc::c_int) -> Result<(), String> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: a live handle's error string is a NUL-terminated string it owns.
        let message = unsafe { std::ffi::CStr::from_ptr(raw::tj3GetErrorStr(self.0)) };
        Err(message.to_string_lossy().into_owned())
    }
}

/// Rows `band` of `job` into `out`: libjpeg-turbo's cropped decompression, which decodes
/// through the rows above without making them and stops after the band.
fn rows(job: Job<'_>, band: Range<usize>, out: &mut [u8]) -> Result<(), String> {
    let pitch = job.pitch();
    let needed = pitch.checked_mul(band.len());
    if band.is_empty() || band.end > job.height || needed.is_none_or(|n| n > out.len()) {
        return Err(format!(
            "rows {band:?} do not fit a buffer of {} bytes",
            out.len()
        ));
    }
    let int = |v: usize| {
        libc::c_int::try_from(v).map_err(|_| format!("{v} does not fit libjpeg-turbo's integers"))
    };
    let (y, h, pitch_c) = (int(band.start)?, int(band.len())?, int(pitch)?);
    let data = job.data;
    let len = raw::size_t::try_from(data.len()).map_err(|_| "the JPEG is too long".to_string())?;
    let scaling = raw::tjscalingfactor {
        num: int(job.scale.num())?,
        denom: int(job.scale.denom())?,
    };
    let d = Handle::decompressor()?;
    // SAFETY: `data` is read within its length; the header is read before the cropping region
    // is set, as the API requires; `out` holds `pitch` bytes for each of the band's rows
    // (checked above) and the picture is the job's size (checked here), so tj3Decompress8
    // writes within it.
    unsafe {
        d.check(raw::tj3DecompressHeader(d.0, data.as_ptr(), len))?;
        let scaled = |param: raw::TJPARAM| {
            let full = raw::tj3Get(d.0, param as libc::c_int).max(0) as usize;
            job.scale.scale(full)
        };
        let size = (
            scaled(raw::TJPARAM_TJPARAM_JPEGWIDTH),
            scaled(raw::TJPARAM_TJPARAM_JPEGHEIGHT),
        );
        if size != (job.width, job.height) {
            return Err(format!(
                "the JPEG decodes to {size:?}, not the {}x{} expected",
                job.width, job.height
            ));
        }
        d.check(raw::tj3SetScalingFactor(d.0, scaling))?;
        if band.len() != job.height {
            let region = raw::tjregion { x: 0, y, w: 0, h };
            d.check(raw::tj3SetCroppingRegion(d.0, region))?;
        }
        d.check(raw::tj3Decompress8(
            d.0,
            data.as_ptr(),
            len,
            out.as_mut_ptr(),
            pitch_c,
            job.format as libc::c_int,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_models::cores::Cores;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/images/");
        std::fs::read(format!("{dir}{name}")).expect("fixture")
    }

    /// A rayon pool of `threads` threads, for helpers to be picked up from.
    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn job(data: &[u8], scale: ScalingFactor) -> (Job<'_>, DecompressHeader) {
        let header = turbojpeg::read_header(data).unwrap();
        let format = match header.colorspace {
            turbojpeg::Colorspace::Gray => PixelFormat::GRAY,
            _ => PixelFormat::RGB,
        };
        let scaled = header.scaled(scale);
        let job = Job {
            data,
            scale,
            format,
            width: scaled.width,
            height: scaled.height,
        };
        (job, header)
    }

    /// A decode at `scale`, with or without an idle core to cut it over.
    fn decoded(data: &[u8], scale: ScalingFactor, cores: Option<&'static Cores>) -> Vec<u8> {
        let (job, header) = job(data, scale);
        decode(job, &header, cores).unwrap()
    }

    #[test]
    fn two_bands_make_the_pixels_of_one_decode() {
        let idle = Cores::leaked(2);
        let pool = pool(2);
        for name in [
            "mountains_1920x1440.jpg", // 4:2:0, fancy upsampling across the cut
            "rocket_640x427.jpg",      // 4:4:4
            "camera_gray_512x512.jpg", // grey
            "dogs_exif_orientation6_3088x2048.jpg",
            "chelsea_tiny_32x21.jpg",            // too short to cut
            "fig_bowl_progressive_1286x870.jpg", // never cut
        ] {
            let data = fixture(name);
            for scale in [
                ScalingFactor::ONE,
                ScalingFactor::ONE_HALF,
                ScalingFactor::ONE_EIGHTH,
            ] {
                let whole = decoded(&data, scale, None);
                let cut = pool.install(|| decoded(&data, scale, Some(idle)));
                assert!(
                    whole == cut,
                    "{name} at {scale:?}: the bands differ from one decode"
                );
                assert_eq!(idle.free(), 2, "the helper's core is back");
            }
        }
    }

    #[test]
    fn only_sequential_pictures_of_some_height_are_cut() {
        let baseline = turbojpeg::read_header(&fixture("mountains_1920x1440.jpg")).unwrap();
        assert_eq!(cut(1440, &baseline), Some(900));
        assert_eq!(cut(MIN_ROWS - 1, &baseline), None);
        let progressive =
            turbojpeg::read_header(&fixture("fig_bowl_progressive_1286x870.jpg")).unwrap();
        assert_eq!(cut(870, &progressive), None);
    }

    #[test]
    fn a_buffer_too_small_for_the_band_is_an_error_not_a_write() {
        let data = fixture("rocket_640x427.jpg");
        let (job, _) = job(&data, ScalingFactor::ONE);
        let mut out = vec![0u8; 640 * 3 * 10];
        let e = rows(job, 0..11, &mut out).unwrap_err();
        assert!(e.contains("do not fit"), "{e}");
        assert!(
            rows(job, 420..428, &mut vec![0u8; 640 * 3 * 8]).is_err(),
            "past the last row"
        );
    }

    #[test]
    fn a_truncated_lower_band_reports_the_premature_end() {
        let data = fixture("mountains_1920x1440.jpg");
        let cut_short = &data[..data.len() * 3 / 4];
        let (job, header) = job(cut_short, ScalingFactor::ONE);
        let idle = Cores::leaked(2);
        let pool = pool(2);
        let e = pool
            .install(|| decode(job, &header, Some(idle)))
            .unwrap_err();
        assert!(super::super::turbo::is_premature_end(&e), "{e}");
    }
}
