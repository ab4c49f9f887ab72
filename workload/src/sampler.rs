//! Drawing page indices from a pattern.

use crate::pattern::{Pattern, PatternError};
use crate::scatter::Scatter;
use crate::zipf::ZipfSampler;
use rand::{Rng, RngExt};

/// Largest video frame buffer per writer, in pages (8 MiB of 4 KiB pages: a 1080p frame at
/// 32 bits per pixel is 7.9 MiB).
pub const VIDEO_FRAME_PAGES_MAX: u64 = 2048;
/// Share of a video writer's writes that go to its frame buffer; the rest land anywhere.
pub const VIDEO_FRAME_WRITE_PERCENT: u64 = 75;
/// A frame buffer takes at most this fraction (1/N) of the region.
const VIDEO_FRAME_REGION_FRACTION: u64 = 64;

#[derive(Clone, Debug)]
enum Kind {
    Uniform,
    Zipf { zipf: ZipfSampler, scatter: Scatter },
    HotSet { hot_pages: u64, hot_write_per_million: u64, scatter: Scatter },
    Sequential { next: u64 },
    Video { frame_first: u64, frame_pages: u64, next_in_frame: u64 },
}

/// Draws the pages one writer writes. O(1) time per page and a few words of memory,
/// whatever the region size.
#[derive(Clone, Debug)]
pub struct PageSampler {
    page_count: u64,
    kind: Kind,
}

impl PageSampler {
    /// A sampler over `0..page_count` for writer number `writer_index` (writers of the
    /// sequential and video patterns start at different places).
    pub fn new(pattern: &Pattern, page_count: u64, writer_index: u32) -> Result<PageSampler, PatternError> {
        pattern.validate()?;
        if page_count == 0 {
            return Err(PatternError::EmptyRegion);
        }
        // Writers' starting points are spread by the golden ratio so any count of them is
        // spread evenly without knowing how many there are.
        let spread = Scatter::new(page_count, 0).map(writer_index as u64);
        let kind = match *pattern {
            Pattern::Uniform => Kind::Uniform,
            Pattern::Zipf { theta } => {
                Kind::Zipf { zipf: ZipfSampler::new(page_count, theta), scatter: Scatter::new(page_count, 0) }
            }
            Pattern::HotSet { hot_write_percent, hot_page_percent } => Kind::HotSet {
                hot_pages: (page_count * hot_page_percent as u64).div_ceil(100).clamp(1, page_count),
                hot_write_per_million: hot_write_percent as u64 * 10_000,
                scatter: Scatter::new(page_count, 0),
            },
            Pattern::Sequential => Kind::Sequential { next: spread },
            Pattern::Video => {
                let frame_pages = (page_count / VIDEO_FRAME_REGION_FRACTION).clamp(1, VIDEO_FRAME_PAGES_MAX);
                let frame_first = spread.min(page_count - frame_pages);
                Kind::Video { frame_first, frame_pages, next_in_frame: 0 }
            }
        };
        Ok(PageSampler { page_count, kind })
    }

    /// Pages in the region.
    pub fn page_count(&self) -> u64 {
        self.page_count
    }

    /// The next page this writer writes.
    pub fn next_page<R: Rng + ?Sized>(&mut self, rng: &mut R) -> u64 {
        let n = self.page_count;
        match &mut self.kind {
            Kind::Uniform => rng.random_range(0..n),
            Kind::Zipf { zipf, scatter } => scatter.map(zipf.sample(rng) - 1),
            Kind::HotSet { hot_pages, hot_write_per_million, scatter } => {
                let hot = rng.random_range(0..1_000_000u64) < *hot_write_per_million;
                let index = match (hot, *hot_pages < n) {
                    (false, true) => rng.random_range(*hot_pages..n),
                    _ => rng.random_range(0..*hot_pages),
                };
                scatter.map(index)
            }
            Kind::Sequential { next } => {
                let page = *next;
                *next = if page + 1 >= n { 0 } else { page + 1 };
                page
            }
            Kind::Video { frame_first, frame_pages, next_in_frame } => {
                if rng.random_range(0..100u64) < VIDEO_FRAME_WRITE_PERCENT {
                    let page = *frame_first + *next_in_frame;
                    *next_in_frame = (*next_in_frame + 1) % *frame_pages;
                    page
                } else {
                    rng.random_range(0..n)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn patterns() -> Vec<Pattern> {
        ["uniform", "zipf:0.99", "hot-set:90/10", "sequential", "video"]
            .iter()
            .map(|t| t.parse().expect("valid pattern text"))
            .collect()
    }

    #[test]
    fn pages_stay_in_the_region() {
        for pattern in patterns() {
            for n in [1u64, 2, 7, 100, 100_003] {
                let mut s = PageSampler::new(&pattern, n, 3).expect("valid sampler");
                let mut rng = ChaCha8Rng::seed_from_u64(n);
                for _ in 0..2_000 {
                    let p = s.next_page(&mut rng);
                    assert!(p < n, "{pattern}: page {p} outside {n}");
                }
            }
        }
    }

    #[test]
    fn hot_set_sends_its_share_to_the_hot_pages() {
        let n = 10_000;
        let pattern: Pattern = "hot-set:90/10".parse().expect("valid");
        let mut s = PageSampler::new(&pattern, n, 0).expect("valid sampler");
        let scatter = Scatter::new(n, 0);
        let hot: std::collections::HashSet<u64> = (0..1_000).map(|i| scatter.map(i)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draws = 100_000;
        let in_hot = (0..draws).filter(|_| hot.contains(&s.next_page(&mut rng))).count();
        let share = in_hot as f64 / draws as f64;
        assert!((0.88..0.92).contains(&share), "hot share {share}");
    }

    #[test]
    fn sequential_sweeps_and_wraps() {
        let mut s = PageSampler::new(&Pattern::Sequential, 5, 0).expect("valid sampler");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let pages: Vec<u64> = (0..7).map(|_| s.next_page(&mut rng)).collect();
        assert_eq!(pages, vec![0, 1, 2, 3, 4, 0, 1]);
    }

    #[test]
    fn video_writes_mostly_its_frame_buffer() {
        let n = 1 << 20;
        let mut s = PageSampler::new(&Pattern::Video, n, 1).expect("valid sampler");
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..20_000 {
            distinct.insert(s.next_page(&mut rng));
        }
        // 75% of 20 000 writes revisit 2048 frame pages; the other 25% are mostly distinct.
        assert!(distinct.len() < 2048 + 5_500 && distinct.len() > 2048 + 4_500, "{}", distinct.len());
    }

    #[test]
    fn zero_pages_is_an_error() {
        assert_eq!(PageSampler::new(&Pattern::Uniform, 0, 0).err(), Some(PatternError::EmptyRegion));
    }

    #[test]
    fn same_seed_same_pages() {
        for pattern in patterns() {
            let draw = || {
                let mut s = PageSampler::new(&pattern, 12_345, 2).expect("valid sampler");
                let mut rng = ChaCha8Rng::seed_from_u64(77);
                (0..500).map(|_| s.next_page(&mut rng)).collect::<Vec<_>>()
            };
            assert_eq!(draw(), draw(), "{pattern}");
        }
    }
}
