//! Walks over a JPEG's markers without decoding. Three uses: a completeness check (decoders fill
//! missing rows with grey and may report success on a cut-off file; reaching the end-of-image
//! marker after the image data proves it is all there), a check that the image data can fill the
//! size the header claims (a tampered header), and the EXIF orientation (libjpeg-turbo exposes no
//! markers, and a full EXIF parser would scan far more than the one tag needed).

/// What the marker walk learnt: the frame header and how many bytes of entropy-coded data follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stream {
    /// The first start-of-frame marker (0xC0..=0xCF less DHT, JPG and DAC) and its size.
    pub frame: Option<Frame>,
    /// Bytes of entropy-coded data over all scans (stuffing and restart markers included).
    pub scan_bytes: usize,
    /// Start-of-scan markers seen.
    pub scans: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub marker: u8,
    pub width: u32,
    pub height: u32,
    /// 8x8 blocks over every component, each at its own sampling.
    pub blocks: u64,
}

impl Frame {
    /// Parses a start-of-frame segment starting at its marker; `None` when it is too short.
    fn parse(seg: &[u8]) -> Option<Frame> {
        let be = |at: usize| {
            Some(u32::from(u16::from_be_bytes([
                *seg.get(at)?,
                *seg.get(at + 1)?,
            ])))
        };
        let (height, width) = (be(5)?, be(7)?);
        let n = usize::from(*seg.get(9)?);
        let comps: Vec<(u32, u32)> = (0..n)
            .map(|c| {
                seg.get(11 + 3 * c)
                    .map(|hv| (u32::from(hv >> 4).max(1), u32::from(hv & 15).max(1)))
            })
            .collect::<Option<_>>()?;
        let hmax = comps.iter().map(|c| c.0).max().unwrap_or(1);
        let vmax = comps.iter().map(|c| c.1).max().unwrap_or(1);
        let blocks = comps
            .iter()
            .map(|&(h, v)| {
                let w = (u64::from(width) * u64::from(h)).div_ceil(u64::from(hmax));
                let hh = (u64::from(height) * u64::from(v)).div_ceil(u64::from(vmax));
                w.div_ceil(8) * hh.div_ceil(8)
            })
            .sum();
        Some(Frame {
            marker: seg[1],
            width,
            height,
            blocks,
        })
    }
}

impl Stream {
    /// `Ok` when the scans hold at least the data the frame's size needs. In Huffman coding
    /// every 8x8 block of every component codes a DC difference and, in sequential files, an
    /// end-of-block or coefficients, each at least one bit: two bits a block for baseline and
    /// extended frames, one for progressive ones (whose later scans can skip runs of blocks).
    /// Arithmetic and lossless coding can go below that: not judged.
    pub fn check_fills(&self) -> Result<(), String> {
        let Some(f) = self.frame else { return Ok(()) };
        let bits_per_block = match f.marker {
            0xC0 | 0xC1 => 2,
            0xC2 => 1,
            _ => return Ok(()),
        };
        let needed = (f.blocks * bits_per_block).div_ceil(8);
        if (self.scan_bytes as u64) < needed {
            return Err(format!(
                "the JPEG's header claims {}x{} pixels, but its {} bytes of image data cannot \
                 fill them (at least {needed} are needed): a corrupt or tampered size header",
                f.width, f.height, self.scan_bytes
            ));
        }
        Ok(())
    }

    /// Bytes a decoder keeps for the whole frame's coefficients (2 bytes each, 64 a block) when
    /// the file has several scans (progressive or multi-scan): at full size, whatever the scale.
    pub fn coefficient_bytes(&self) -> u64 {
        match self.frame {
            Some(f) if self.scans > 1 || f.marker == 0xC2 => f.blocks * 128,
            _ => 0,
        }
    }
}

/// The stream's frame and scan sizes when it has every segment it declares and reaches its end
/// marker after the image data; otherwise the reason, in words.
pub fn check_complete(data: &[u8]) -> Result<Stream, String> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err("not a JPEG stream (no start-of-image marker)".into());
    }
    let mut pos = 2;
    let mut seen_scan = false;
    let mut stream = Stream::default();
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
            0xD9 if seen_scan => return Ok(stream),
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
                if stream.frame.is_none() && is_frame(marker) {
                    stream.frame = Frame::parse(&data[pos..pos + 2 + len]);
                }
                pos += 2 + len;
                if marker == 0xDA {
                    seen_scan = true;
                    stream.scans += 1;
                    let end = skip_entropy_data(data, pos);
                    stream.scan_bytes += end - pos;
                    pos = end;
                }
            }
        }
    }
}

/// Start-of-frame markers: 0xC0..=0xCF except DHT (C4), JPG (C8) and DAC (CC).
fn is_frame(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
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
        assert!(check_complete(&jpeg(&[SOI, APP0, SOS, scan, EOI])).is_ok());
        // Progressive files have several scans with tables between them.
        let dht: &[u8] = &[0xFF, 0xC4, 0x00, 0x02];
        assert_eq!(
            check_complete(&jpeg(&[SOI, SOS, scan, dht, SOS, scan, EOI, b"junk"]))
                .map(|s| s.scan_bytes),
            Ok(2 * scan.len())
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

    fn sof(marker: u8, w: u16, h: u16) -> Vec<u8> {
        let mut seg = vec![0xFF, marker, 0x00, 0x0B, 8];
        seg.extend_from_slice(&h.to_be_bytes());
        seg.extend_from_slice(&w.to_be_bytes());
        seg.extend_from_slice(&[1, 1, 0x11, 0]);
        seg
    }

    #[test]
    fn a_size_the_data_cannot_fill_is_refused_with_both_figures() {
        // Baseline 64x64 grey is 64 blocks at two bits: 16 bytes at the least.
        let scan = [0x55u8; 16];
        let ok = check_complete(&jpeg(&[SOI, &sof(0xC0, 64, 64), SOS, &scan, EOI])).unwrap();
        assert_eq!(
            ok.frame,
            Some(Frame {
                marker: 0xC0,
                width: 64,
                height: 64,
                blocks: 64
            })
        );
        assert_eq!((ok.scans, ok.coefficient_bytes()), (1, 0));
        assert_eq!(ok.check_fills(), Ok(()));
        for marker in [0xC0, 0xC1] {
            let s = check_complete(&jpeg(&[SOI, &sof(marker, 64, 72), SOS, &scan, EOI])).unwrap();
            let err = s.check_fills().unwrap_err();
            assert!(err.contains("64x72") && err.contains("16 bytes"), "{err}");
        }
        // Progressive: one bit a block, and the whole frame's coefficients kept while decoding.
        let p = check_complete(&jpeg(&[SOI, &sof(0xC2, 64, 128), SOS, &scan, EOI])).unwrap();
        assert_eq!(p.check_fills(), Ok(()));
        assert_eq!(p.coefficient_bytes(), 128 * 128);
        let p = check_complete(&jpeg(&[SOI, &sof(0xC2, 64, 136), SOS, &scan, EOI])).unwrap();
        assert!(p.check_fills().is_err());
        // Arithmetic coding (0xC9) can pack a block into less than a bit: not judged.
        let s = check_complete(&jpeg(&[SOI, &sof(0xC9, 9000, 9000), SOS, &scan, EOI])).unwrap();
        assert_eq!(s.check_fills(), Ok(()));
    }

    #[test]
    fn blocks_count_every_component_at_its_sampling() {
        // 4:2:0 colour, 33x17: luma 5x3 blocks, each chroma plane 17x9 pixels, 3x2 blocks.
        let seg = [
            0xFF, 0xC0, 0x00, 0x11, 8, 0, 17, 0, 33, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
        ];
        let f = Frame::parse(&seg).unwrap();
        assert_eq!((f.width, f.height, f.blocks), (33, 17, 15 + 6 + 6));
        assert_eq!(Frame::parse(&seg[..12]), None, "cut inside the components");
    }
}
