//! The pure decisions of frame picking, apart from FFmpeg: which decoded frame answers an
//! interval, how much the picture changed, and whether a file stopped short.

/// Interval mode: the first frame at or after each multiple of `every`, within half a frame.
#[derive(Debug, Clone)]
pub struct Intervals {
    every: f64,
    next: u64,
    half_frame: f64,
}

impl Intervals {
    pub fn new(every: f64, fps: Option<f64>) -> Self {
        let half_frame = fps.filter(|f| *f > 0.0).map_or(0.0, |f| 0.5 / f);
        Intervals {
            every,
            next: 0,
            half_frame,
        }
    }

    /// The time the next picked frame should show.
    pub fn target(&self) -> f64 {
        self.next as f64 * self.every
    }

    /// Whether the frame at `pts` is picked. A picked frame answers every target up to it, so a
    /// gap in the video gives one frame, not copies.
    pub fn offer(&mut self, pts: f64) -> bool {
        if pts + self.half_frame < self.target() {
            return false;
        }
        while self.target() <= pts + self.half_frame {
            self.next += 1;
        }
        true
    }
}

/// Side of the grey grid a picture is reduced to before two are compared.
pub const GRID: (u32, u32) = (64, 36);

/// Scene mode: the first frame, then every frame whose grid differs from the previous frame's
/// by at least `threshold` (mean absolute difference, 0..1).
#[derive(Debug, Clone)]
pub struct Scenes {
    threshold: f64,
    previous: Option<Vec<u8>>,
}

impl Scenes {
    pub fn new(threshold: f64) -> Self {
        Scenes {
            threshold,
            previous: None,
        }
    }

    /// Offers the next frame's grid; returns whether it starts a scene, and its score.
    pub fn offer(&mut self, grid: Vec<u8>) -> (bool, f64) {
        let result = match &self.previous {
            None => (true, 1.0),
            Some(p) => {
                let s = difference(p, &grid);
                (s >= self.threshold, s)
            }
        };
        self.previous = Some(grid);
        result
    }
}

/// Mean absolute difference of two equally sized grey pictures, 0 (same) to 1.
pub fn difference(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 1.0;
    }
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / (a.len() as f64 * 255.0)
}

/// Whether the packets read end visibly before the declared duration: the file was cut (its
/// index promised more than its data held). Two frames, or a quarter second, of slack.
pub fn cut_short(read_until: Option<f64>, declared: Option<f64>, fps: Option<f64>) -> bool {
    let slack = fps
        .filter(|f| *f > 0.0)
        .map_or(0.25, |f| (2.0 / f).max(0.25));
    match (read_until, declared) {
        (Some(end), Some(d)) => end + slack < d,
        (None, Some(d)) => d > slack,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_pick_the_first_frame_at_each_multiple() {
        let mut p = Intervals::new(2.5, Some(24.0));
        let picked: Vec<f64> = (0..240)
            .map(|i| f64::from(i) / 24.0)
            .filter(|t| p.offer(*t))
            .collect();
        assert_eq!(picked, vec![0.0, 2.5, 5.0, 7.5]);
    }

    #[test]
    fn a_frame_within_half_a_frame_of_the_target_answers_it() {
        // 30 fps: frames at 1/30 steps; 0.1 s is frame 3 (0.09999…).
        let mut p = Intervals::new(0.1, Some(30.0));
        let picked: Vec<usize> = (0..10).filter(|i| p.offer(*i as f64 / 30.0)).collect();
        assert_eq!(picked, vec![0, 3, 6, 9]);
    }

    #[test]
    fn a_gap_gives_one_frame_not_copies() {
        let mut p = Intervals::new(1.0, Some(25.0));
        assert!(p.offer(0.0));
        assert!(p.offer(5.04), "the first frame after a gap answers");
        assert_eq!(p.target(), 6.0, "targets the gap covered are skipped");
        assert!(!p.offer(5.08));
    }

    #[test]
    fn scenes_start_at_the_first_frame_and_at_big_changes() {
        let mut s = Scenes::new(0.2);
        assert_eq!(s.offer(vec![10; 16]), (true, 1.0));
        assert!(!s.offer(vec![12; 16]).0, "a small change is the same scene");
        let (cut, score) = s.offer(vec![200; 16]);
        assert!(cut && (score - 188.0 / 255.0).abs() < 1e-9);
        assert_eq!(difference(&[0, 255], &[255, 0]), 1.0);
    }

    #[test]
    fn a_file_is_cut_short_when_its_packets_end_early() {
        assert!(
            !cut_short(Some(9.96), Some(10.0), Some(25.0)),
            "last frame's start"
        );
        assert!(cut_short(Some(1.5), Some(3.0), Some(30.0)));
        assert!(
            cut_short(None, Some(3.0), Some(30.0)),
            "nothing read at all"
        );
        assert!(
            !cut_short(Some(1.0), None, None),
            "no declared duration: unknown"
        );
    }
}
