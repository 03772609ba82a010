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

/// A builder for a statement of `head` followed by `rows` rows of `columns` binds, with
/// its argument list and SQL text allocated at their final size: grown value by value,
/// they were reallocated a dozen times per chunk (4% of the default configuration's
/// CPU, most of it faulting in fresh pages).
pub fn sized_builder<DB: sqlx::Database>(
    head: &str,
    rows: usize,
    columns: usize,
) -> sqlx::QueryBuilder<DB>
where
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    use sqlx::Arguments;
    let mut arguments = <DB as sqlx::Database>::Arguments::default();
    arguments.reserve(rows * columns, 0);
    // Room for "$nnnn, " per value, "(), " per row and a tail such as ON CONFLICT.
    let mut sql = String::with_capacity(head.len() + rows * (columns * 7 + 4) + 1024);
    sql.push_str(head);
    sqlx::QueryBuilder::with_arguments(sql, arguments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize, max: usize) -> Vec<usize> {
        let items: Vec<usize> = (0..n).collect();
        statement_chunks(&items, max).map(<[usize]>::len).collect()
    }

    #[test]
    fn a_sized_builder_starts_with_its_head() {
        let mut q = sized_builder::<sqlx::Sqlite>("INSERT INTO t (a, b) ", 2, 2);
        q.push_values([(1i64, 2i64), (3, 4)], |mut b, (x, y)| {
            b.push_bind(x).push_bind(y);
        });
        assert_eq!(
            q.sql().as_str(),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
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
