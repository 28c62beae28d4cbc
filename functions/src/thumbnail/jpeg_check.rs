//! A JPEG completeness check. Decoders in pure Rust fill missing rows with grey and report
//! success on a cut-off file; walking the markers to the end-of-image marker tells us the data is
//! all there before we decode, in one pass over the bytes and without allocating.

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
