//! Walks over a JPEG's markers without decoding. Two uses: a completeness check (decoders fill
//! missing rows with grey and may report success on a cut-off file; reaching the end-of-image
//! marker after the image data proves it is all there), and the EXIF orientation (libjpeg-turbo
//! exposes no markers, and a full EXIF parser would scan far more than the one tag needed).

/// `Ok` when the stream has every segment it declares and reaches its end marker after the image
/// data; otherwise the reason, in words.
pub fn check_complete(data: &[u8]) -> Result<(), String> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err("not a JPEG stream (no start-of-image marker)".into());
    }
    let mut pos = 2;
    let mut seen_scan = false;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while pos < data.len() && data[pos] == 0xFF && data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if pos + 1 >= data.len() {
            return Err(if seen_scan {
                "the JPEG data stops before its end (truncated file)".into()
            } else {
                "the JPEG stops in its headers, before any image data (truncated file)".into()
            });
        }
        if data[pos] != 0xFF {
            return Err(format!("corrupt JPEG: expected a marker at byte {pos}"));
        }
        let marker = data[pos + 1];
        match marker {
            0xD9 if seen_scan => return Ok(()),
            0xD9 => return Err("the JPEG ends before any image data".into()),
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let len = match data.get(pos + 2..pos + 4) {
                    Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
                    None => {
                        return Err(
                            "the JPEG stops inside a segment header (truncated file)".into()
                        );
                    }
                };
                if len < 2 || pos + 2 + len > data.len() {
                    return Err(format!(
                        "the JPEG stops inside a 0x{marker:02X} segment (truncated file)"
                    ));
                }
                pos += 2 + len;
                if marker == 0xDA {
                    seen_scan = true;
                    pos = skip_entropy_data(data, pos);
                }
            }
        }
    }
}

/// Returns the position of the first marker after entropy-coded data starting at `pos`: a 0xFF
/// followed by neither a stuffed zero nor a restart marker. Returns `data.len()` if none.
fn skip_entropy_data(data: &[u8], mut pos: usize) -> usize {
    while let Some(off) = data[pos..].iter().position(|&b| b == 0xFF) {
        let at = pos + off;
        match data.get(at + 1) {
            None => return data.len(),
            Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => pos = at + 1,
            Some(_) => return at,
        }
    }
    data.len()
}

/// The EXIF orientation (1..=8) from the first APP1 `Exif` segment before the image data.
pub fn exif_orientation(data: &[u8]) -> Option<u8> {
    let mut pos = 2;
    while pos + 4 <= data.len() && data[pos] == 0xFF {
        let marker = data[pos + 1];
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        if marker == 0xFF {
            pos += 1;
            continue;
        }
        let len = u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
        let segment = data.get(pos + 4..pos + 2 + len)?;
        if marker == 0xE1 && segment.starts_with(b"Exif\0\0") {
            return tiff_orientation(&segment[6..]);
        }
        pos += 2 + len;
    }
    None
}

/// Tag 0x0112 of IFD0 in a TIFF block, either byte order.
fn tiff_orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(..4)? {
        [b'M', b'M', 0, 42] => true,
        [b'I', b'I', 42, 0] => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    (0..count.min(512)).find_map(|i| {
        let entry = ifd + 2 + i * 12;
        // Tag 0x0112, type SHORT (3): the value sits in the entry's first two value bytes.
        (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3)
            .then(|| u16_at(entry + 8))
            .flatten()
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| (1..=8).contains(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const SOI: &[u8] = &[0xFF, 0xD8];
    const APP0: &[u8] = &[0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB];
    const SOS: &[u8] = &[0xFF, 0xDA, 0x00, 0x03, 0x01];
    const EOI: &[u8] = &[0xFF, 0xD9];

    #[test]
    fn complete_stream_passes_even_with_stuffed_bytes_and_restarts() {
        let scan: &[u8] = &[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56];
        assert_eq!(check_complete(&jpeg(&[SOI, APP0, SOS, scan, EOI])), Ok(()));
        // Progressive files have several scans with tables between them.
        let dht: &[u8] = &[0xFF, 0xC4, 0x00, 0x02];
        assert_eq!(
            check_complete(&jpeg(&[SOI, SOS, scan, dht, SOS, scan, EOI, b"junk"])),
            Ok(())
        );
    }

    fn exif_app1(orientation: u8, big_endian: bool) -> Vec<u8> {
        let mut tiff: Vec<u8> = if big_endian {
            vec![
                b'M',
                b'M',
                0,
                42,
                0,
                0,
                0,
                8,
                0,
                1,
                0x01,
                0x12,
                0,
                3,
                0,
                0,
                0,
                1,
                0,
                orientation,
                0,
                0,
            ]
        } else {
            vec![
                b'I',
                b'I',
                42,
                0,
                8,
                0,
                0,
                0,
                1,
                0,
                0x12,
                0x01,
                3,
                0,
                1,
                0,
                0,
                0,
                orientation,
                0,
                0,
                0,
            ]
        };
        tiff.extend_from_slice(&[0, 0, 0, 0]);
        let mut seg = b"Exif\0\0".to_vec();
        seg.extend(tiff);
        let len = (seg.len() + 2) as u16;
        let mut out = vec![0xFF, 0xE1];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(seg);
        out
    }

    #[test]
    fn orientation_is_read_in_both_byte_orders_and_only_before_the_image_data() {
        for big in [true, false] {
            let app1 = exif_app1(6, big);
            assert_eq!(
                exif_orientation(&jpeg(&[SOI, APP0, &app1, SOS, EOI])),
                Some(6),
                "big={big}"
            );
        }
        assert_eq!(exif_orientation(&jpeg(&[SOI, APP0, SOS, EOI])), None);
        assert_eq!(
            exif_orientation(&jpeg(&[SOI, &exif_app1(9, true), SOS])),
            None,
            "9 is not an orientation"
        );
        // A cut-off APP1 is no orientation, not a panic.
        let app1 = exif_app1(3, false);
        for cut in 0..app1.len() {
            let _ = exif_orientation(&jpeg(&[SOI, &app1[..cut]]));
        }
    }

    #[test]
    fn truncation_is_found_wherever_it_happens() {
        let scan: &[u8] = &[0x12, 0x34];
        let full = jpeg(&[SOI, APP0, SOS, scan, EOI]);
        for cut in 0..full.len() - 1 {
            assert!(check_complete(&full[..cut]).is_err(), "cut at {cut} passed");
        }
        let err = check_complete(&jpeg(&[SOI, APP0, SOS, scan])).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        // An end marker inside an APPn segment (an EXIF thumbnail) does not count.
        let app1: &[u8] = &[0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9];
        assert!(check_complete(&jpeg(&[SOI, app1, SOS, scan])).is_err());
    }
}
