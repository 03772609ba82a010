//! Multi-row statements in a few fixed shapes.
//!
//! A multi-row INSERT or UPDATE is prepared once per distinct SQL text; with chunks of
//! whatever length a batch happens to have, nearly every batch brings a new text that
//! the database parses again (SQLite's parser was 6% of the REST API's CPU under load)
//! and that pushes useful statements out of the connection's statement cache. Chunks of
//! `max` rows or of `max / 4^k` rows give at most a handful of texts, all cached.

/// Splits `items` into runs of `max` rows, then of `max / 4`, `max / 16`, … down to 1,
/// each as long as what is left allows.
pub fn statement_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = max;
        while size > rest.len() {
            size = (size / 4).max(1);
        }
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize, max: usize) -> Vec<usize> {
        let items: Vec<usize> = (0..n).collect();
        statement_chunks(&items, max).map(<[usize]>::len).collect()
    }

    #[test]
    fn every_item_once_in_order() {
        let items: Vec<usize> = (0..1234).collect();
        let joined: Vec<usize> = statement_chunks(&items, 256).flatten().copied().collect();
        assert_eq!(joined, items);
    }

    #[test]
    fn only_a_few_lengths() {
        assert_eq!(lengths(0, 256), Vec::<usize>::new());
        assert_eq!(lengths(3, 256), vec![1, 1, 1]);
        assert_eq!(lengths(600, 256), vec![256, 256, 64, 16, 4, 4]);
        let mut seen: Vec<usize> = (0..2000).flat_map(|n| lengths(n, 500)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, vec![1, 7, 31, 125, 500]);
    }
}
