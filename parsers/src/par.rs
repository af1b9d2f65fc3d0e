//! Per-item work spread over the machine's cores, for fleets large enough to be worth it.

/// Fleets at least this large are split over several threads.
pub const PARALLEL_MIN_ITEMS: usize = 512;

/// `items.iter().map(f)`, in order, on up to 8 scoped threads when there are many items.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = if items.len() >= PARALLEL_MIN_ITEMS {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8)
    } else {
        1
    };
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(workers).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker panicked")).collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn order_is_kept_on_every_path() {
        for n in [3, 2000] {
            let v: Vec<usize> = (0..n).collect();
            assert_eq!(super::par_map(&v, |x| x * 2), v.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }
}
