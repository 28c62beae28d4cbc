//! The batching decision, kept pure so it is tested without a runtime: a batch closes when it is
//! full or when its first item has waited `max_delay`.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Accumulator<T> {
    max_size: usize,
    max_delay: Duration,
    items: Vec<T>,
    opened: Option<Instant>,
}

impl<T> Accumulator<T> {
    pub fn new(max_size: usize, max_delay: Duration) -> Self {
        let max_size = max_size.max(1);
        Accumulator {
            max_size,
            max_delay,
            items: Vec::with_capacity(max_size),
            opened: None,
        }
    }

    /// Add an item; returns the batch when this item filled it.
    pub fn push(&mut self, item: T, now: Instant) -> Option<Vec<T>> {
        self.opened.get_or_insert(now);
        self.items.push(item);
        (self.items.len() >= self.max_size).then(|| self.take())
    }

    /// When the open batch must be flushed, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|t| t + self.max_delay)
    }

    /// The open batch, if its delay has run out at `now`.
    pub fn take_due(&mut self, now: Instant) -> Option<Vec<T>> {
        match self.deadline() {
            Some(d) if now >= d => Some(self.take()),
            _ => None,
        }
    }

    /// The open batch, whatever its age (at shutdown).
    pub fn take(&mut self) -> Vec<T> {
        self.opened = None;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.max_size))
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_when_full() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(3, Duration::from_millis(5));
        assert_eq!(acc.push(1, t0), None);
        assert_eq!(acc.push(2, t0), None);
        assert_eq!(acc.push(3, t0), Some(vec![1, 2, 3]));
        assert!(acc.is_empty());
        assert_eq!(acc.deadline(), None);
    }

    #[test]
    fn closes_when_the_first_item_has_waited_max_delay() {
        let t0 = Instant::now();
        let delay = Duration::from_millis(5);
        let mut acc = Accumulator::new(8, delay);
        acc.push('a', t0);
        acc.push('b', t0 + Duration::from_millis(4));
        // The deadline follows the first item, not the latest.
        assert_eq!(acc.deadline(), Some(t0 + delay));
        assert_eq!(acc.take_due(t0 + Duration::from_millis(4)), None);
        assert_eq!(acc.take_due(t0 + delay), Some(vec!['a', 'b']));
        assert_eq!(acc.take_due(t0 + delay * 10), None);
    }

    #[test]
    fn size_one_never_waits() {
        let mut acc = Accumulator::new(0, Duration::from_secs(1));
        assert_eq!(acc.push(7, Instant::now()), Some(vec![7]));
    }
}
