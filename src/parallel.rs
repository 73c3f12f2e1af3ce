//! Data parallelism for the stages around evaluation (cache reads,
//! emitting): a function over a slice, one share on the calling thread and
//! the others on scoped threads, results in order.

/// `f` of every item, in order, computed on up to `workers` threads (one
/// contiguous share each).
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let mut shares = items.chunks(items.len().div_ceil(workers));
    let first = shares.next().unwrap_or_default();
    std::thread::scope(|s| {
        let others: Vec<_> = shares
            .map(|share| s.spawn(move || share.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = first.iter().map(f).collect();
        join_into(&mut out, others);
        out
    })
}

/// `f` of every item, taking each by value, in order, computed on up to
/// `workers` threads (one contiguous share each).
pub fn map_owned<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.into_iter().map(f).collect();
    }
    let mut shares = split_owned(items, workers).into_iter();
    let first = shares.next().unwrap_or_default();
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<_> = shares
            .map(|share| s.spawn(move || share.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = first.into_iter().map(f).collect();
        join_into(&mut out, others);
        out
    })
}

/// Appends the results of the threads that computed the shares after the
/// caller's own, in order. The caller computes the first share itself:
/// one thread fewer to start, and its memory already has pages.
fn join_into<R>(out: &mut Vec<R>, others: Vec<std::thread::ScopedJoinHandle<'_, Vec<R>>>) {
    for h in others {
        out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
    }
}

/// `items` in `count` contiguous shares (fewer when there are fewer
/// items), in order.
pub fn split_owned<T>(items: Vec<T>, count: usize) -> Vec<Vec<T>> {
    let share = items.len().div_ceil(count.max(1)).max(1);
    let mut shares: Vec<Vec<T>> = Vec::with_capacity(count);
    let mut items = items.into_iter();
    loop {
        let next: Vec<T> = items.by_ref().take(share).collect();
        if next.is_empty() {
            break;
        }
        shares.push(next);
    }
    shares
}

/// Drops `value` on a thread of its own, beside the work that goes on:
/// freeing a large tree one node at a time then costs the caller nothing.
/// (When no thread can be started, it is dropped here.)
pub fn drop_beside<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new().spawn(move || drop(value));
}

/// Threads the machine offers. Asked once: the standard library reads
/// the cgroup's files on every call, and a render asks at every stage.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        let items: Vec<usize> = (0..1001).collect();
        for workers in [0, 1, 2, 7, 5000] {
            let out = super::map(&items, workers, |i| i * 2);
            assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(super::map(&[] as &[u8], 4, |_| 0).is_empty());
        for workers in [0, 1, 2, 7, 5000] {
            let out = super::map_owned(items.clone(), workers, |i| i * 2);
            assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(super::map_owned(Vec::<u8>::new(), 4, |_| 0).is_empty());
        let shares = super::split_owned(items.clone(), 4);
        assert_eq!(shares.len(), 4);
        assert_eq!(shares.concat(), items);
        assert!(super::split_owned(Vec::<u8>::new(), 4).is_empty());
    }
}
