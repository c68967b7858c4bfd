//! Refusing statements nested too deeply to parse and plan safely.
//!
//! Parsing, planning and optimizing walk expressions recursively, so a
//! statement such as `SELECT 1 + 1 + … + 1` with thousands of terms would
//! overflow a thread's stack and abort the whole server. Before any
//! parser sees a statement, its tokens (read iteratively, so any length
//! is safe) give an upper bound of its expression depth: within each
//! parenthesised group, the operators of one list item or clause chain
//! into one another, and a group nests inside its parent. A statement
//! whose bound exceeds [`MAX_DEPTH`] is refused with
//! [`QueryError::TooComplex`] (SQLSTATE 54001), in debug and release
//! builds alike; the threads that run statements have stacks sized for
//! that depth (see the `mesh` binary's runtime).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::QueryError;

/// The deepest expression nesting a statement may have.
pub const MAX_DEPTH: usize = 1024;

/// One parenthesised group while scanning.
#[derive(Default)]
struct Group {
    /// Operators in the current list item or clause.
    chain: usize,
    /// The longest chain so far.
    longest: usize,
    /// The deepest group inside.
    inner: usize,
}

impl Group {
    fn close_chain(&mut self) {
        self.longest = self.longest.max(self.chain);
        self.chain = 0;
    }

    fn depth(mut self) -> usize {
        self.close_chain();
        self.longest + self.inner + 1
    }
}

/// An upper bound of the expression depth of `sql`; `None` when it does
/// not tokenize (the parser then reports the error itself).
pub fn depth_bound(sql: &str) -> Option<usize> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let mut stack: Vec<Group> = vec![Group::default()];
    for token in tokens {
        match token {
            Token::LParen | Token::LBracket => stack.push(Group::default()),
            Token::RParen | Token::RBracket => {
                if stack.len() > 1
                    && let Some(done) = stack.pop()
                {
                    let d = done.depth();
                    if let Some(parent) = stack.last_mut() {
                        parent.inner = parent.inner.max(d);
                    }
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(g) = stack.last_mut() {
                    g.close_chain();
                }
            }
            Token::Word(w) => {
                let g = stack.last_mut()?;
                match w.keyword {
                    Keyword::SELECT
                    | Keyword::FROM
                    | Keyword::WHERE
                    | Keyword::GROUP
                    | Keyword::HAVING
                    | Keyword::ORDER
                    | Keyword::LIMIT
                    | Keyword::UNION
                    | Keyword::EXCEPT
                    | Keyword::INTERSECT
                    | Keyword::JOIN
                    | Keyword::WITH => g.close_chain(),
                    Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::IS
                    | Keyword::IN
                    | Keyword::BETWEEN
                    | Keyword::CASE
                    | Keyword::WHEN
                    | Keyword::ON => g.chain += 1,
                    _ => {}
                }
            }
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Period
            | Token::EOF
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::Placeholder(_) => {}
            // Every other token is an operator of some kind.
            _ => {
                if let Some(g) = stack.last_mut() {
                    g.chain += 1;
                }
            }
        }
    }
    // Unclosed groups: count them as closed (the parser will refuse).
    let mut depth = 0;
    while let Some(mut g) = stack.pop() {
        g.inner = g.inner.max(depth);
        depth = g.depth();
    }
    Some(depth)
}

/// Refuses `sql` when its expressions may nest deeper than [`MAX_DEPTH`].
pub fn check(sql: &str) -> Result<(), QueryError> {
    match depth_bound(sql) {
        Some(depth) if depth > MAX_DEPTH => Err(QueryError::TooComplex {
            depth,
            limit: MAX_DEPTH,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> String {
        format!("SELECT 1{}", "+1".repeat(n))
    }

    #[test]
    fn a_long_chain_or_deep_nesting_is_too_complex() {
        assert!(check(&chain(100)).is_ok());
        assert!(check(&chain(100_000)).is_err());
        let nested = format!("SELECT {}1{}", "(".repeat(1100), ")".repeat(1100));
        assert!(check(&nested).is_err());
        let negated = format!("SELECT {}1", "- ".repeat(2000));
        assert!(check(&negated).is_err());
    }

    #[test]
    fn wide_statements_are_not_deep() {
        // A thousand columns, a thousand-item IN list, many conditions in
        // separate groups: wide, not deep.
        let columns: Vec<String> = (0..1000).map(|i| format!("a + {i}")).collect();
        assert!(check(&format!("SELECT {} FROM t", columns.join(", "))).is_ok());
        let list: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert!(check(&format!("SELECT * FROM t WHERE a IN ({})", list.join(", "))).is_ok());
        let ands: Vec<String> = (0..100).map(|i| format!("(a = {i})")).collect();
        assert!(check(&format!("SELECT * FROM t WHERE {}", ands.join(" OR "))).is_ok());
        assert_eq!(depth_bound("SELECT 1"), Some(1));
    }
}
