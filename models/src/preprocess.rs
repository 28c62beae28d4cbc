//! Pixels to a model's input row: `(pixel - mean) / std` per channel, in the model's channel
//! order and layout. Decoding, resizing and cropping happen before, in the `classify` function.

use crate::config::{Channels, Layout, Preprocess};

/// Normalise one `side`×`side` RGB8 image into f32 values for one input row.
pub fn normalize(p: &Preprocess, rgb: &[u8], side: usize, out: &mut Vec<f32>) {
    debug_assert_eq!(rgb.len(), side * side * 3);
    let order: [usize; 3] = match p.channels {
        Channels::Rgb => [0, 1, 2],
        Channels::Bgr => [2, 1, 0],
    };
    let scale: [f32; 3] = [1.0 / p.std[0], 1.0 / p.std[1], 1.0 / p.std[2]];
    let value = |px: &[u8], c: usize| (f32::from(px[order[c]]) - p.mean[c]) * scale[c];
    match p.layout {
        Layout::Nchw => {
            for c in 0..3 {
                out.extend(rgb.chunks_exact(3).map(|px| value(px, c)));
            }
        }
        Layout::Nhwc => {
            for px in rgb.chunks_exact(3) {
                out.extend((0..3).map(|c| value(px, c)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Filter;

    fn p(layout: Layout, channels: Channels) -> Preprocess {
        Preprocess {
            resize: 2,
            crop: 2,
            filter: Filter::Bilinear,
            mean: [127.0, 127.0, 127.0],
            std: [128.0, 128.0, 128.0],
            layout,
            channels,
        }
    }

    #[test]
    fn layouts_and_channel_orders() {
        // Two pixels of a 1x2 image would not be square; use a 1x1 image of (255, 127, 0).
        let rgb = [255u8, 127, 0];
        let mut v = Vec::new();
        normalize(&p(Layout::Nchw, Channels::Rgb), &rgb, 1, &mut v);
        assert_eq!(v, vec![1.0, 0.0, -127.0 / 128.0]);
        v.clear();
        normalize(&p(Layout::Nhwc, Channels::Bgr), &rgb, 1, &mut v);
        assert_eq!(v, vec![-127.0 / 128.0, 0.0, 1.0]);
        // NCHW puts each channel's plane together.
        let rgb2 = [10u8, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120];
        v.clear();
        normalize(&p(Layout::Nchw, Channels::Rgb), &rgb2, 2, &mut v);
        let back: Vec<u8> = v
            .iter()
            .map(|x| (x * 128.0 + 127.0).round() as u8)
            .collect();
        assert_eq!(
            back,
            vec![10, 40, 70, 100, 20, 50, 80, 110, 30, 60, 90, 120]
        );
    }
}
