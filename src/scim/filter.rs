//! Filters (RFC 7644 §3.4.2.2): parsed once into a tree, evaluated against a resource's JSON.
//! What the IdPs send is `userName eq "…"`, `externalId eq "…"`, `displayName eq "…"` and
//! Entra's `id eq "…" and members[value eq "…"]`; the whole grammar is accepted, within limits
//! on length and nesting so a hostile filter costs little.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::ScimError;
use super::path::AttrPath;

const MAX_LEN: usize = 4_096;
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, Op, Value),
    Present(AttrPath),
    /// `emails[type eq "work"]`: an element of the multi-valued attribute matches.
    ValuePath(AttrPath, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Word(String),
    Str(String),
}

fn lex(text: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                // A JSON string: find its closing quote (skipping escapes), then decode it.
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (i, c) in chars.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.ok_or_else(|| {
                    ScimError::invalid_filter(format!("a string at {at} is not closed"))
                })?;
                let decoded: String = serde_json::from_str(&text[at..=end]).map_err(|e| {
                    ScimError::invalid_filter(format!("the string at {at} is not valid: {e}"))
                })?;
                tokens.push(Token::Str(decoded));
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(text[at..end].to_string()));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter(format!(
                "the filter nests deeper than {MAX_DEPTH}"
            )));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.next();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            self.next();
            self.expect(&Token::Open, "`(` after `not`")?;
            let inner = self.nested(Self::or)?;
            self.expect(&Token::Close, "`)`")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.next();
            let inner = self.nested(Self::or)?;
            self.expect(&Token::Close, "`)`")?;
            return Ok(inner);
        }
        let path = match self.next() {
            Some(Token::Word(word)) => {
                AttrPath::parse(&word).map_err(|e| ScimError::invalid_filter(e.detail))?
            }
            other => {
                return Err(ScimError::invalid_filter(format!(
                    "expected an attribute, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        if self.peek() == Some(&Token::OpenBracket) {
            self.next();
            let inner = self.nested(Self::or)?;
            self.expect(&Token::CloseBracket, "`]`")?;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Token::Word(op)) => op.to_ascii_lowercase(),
            other => {
                return Err(ScimError::invalid_filter(format!(
                    "expected an operator after `{}`, found {}",
                    path.attr,
                    describe(other.as_ref())
                )));
            }
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => {
                return Err(ScimError::invalid_filter(format!(
                    "`{other}` is not a filter operator"
                )));
            }
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&w)
                    .map(Value::Number)
                    .map_err(|_| {
                        ScimError::invalid_filter(format!(
                            "`{w}` is not a value (strings are quoted)"
                        ))
                    })?,
            },
            other => {
                return Err(ScimError::invalid_filter(format!(
                    "expected a value, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        Ok(Filter::Compare(path, op, value))
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), ScimError> {
        match self.next() {
            Some(t) if &t == token => Ok(()),
            other => Err(ScimError::invalid_filter(format!(
                "expected {what}, found {}",
                describe(other.as_ref())
            ))),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end".into(),
        Some(Token::Open) => "`(`".into(),
        Some(Token::Close) => "`)`".into(),
        Some(Token::OpenBracket) => "`[`".into(),
        Some(Token::CloseBracket) => "`]`".into(),
        Some(Token::Word(w)) => format!("`{w}`"),
        Some(Token::Str(s)) => format!("{s:?}"),
    }
}

impl Filter {
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        if text.len() > MAX_LEN {
            return Err(ScimError::invalid_filter(format!(
                "the filter is longer than {MAX_LEN} characters"
            )));
        }
        let mut parser = Parser {
            tokens: lex(text)?,
            at: 0,
            depth: 0,
        };
        if parser.tokens.is_empty() {
            return Err(ScimError::invalid_filter("the filter is empty"));
        }
        let filter = parser.or()?;
        match parser.peek() {
            None => Ok(filter),
            Some(extra) => Err(ScimError::invalid_filter(format!(
                "unexpected {} after the filter",
                describe(Some(extra))
            ))),
        }
    }

    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Self::And(a, b) => a.matches(resource) && b.matches(resource),
            Self::Or(a, b) => a.matches(resource) || b.matches(resource),
            Self::Not(inner) => !inner.matches(resource),
            Self::Present(path) => path.values(resource).iter().any(|v| present(v)),
            Self::ValuePath(path, inner) => match path.attribute(resource) {
                Some(Value::Array(items)) => items.iter().any(|item| inner.matches(item)),
                Some(one @ Value::Object(_)) => inner.matches(one),
                _ => false,
            },
            Self::Compare(path, Op::Ne, value) => !path
                .values(resource)
                .into_iter()
                .any(|v| compare(v, Op::Eq, value, path.case_exact())),
            Self::Compare(path, op, value) => path
                .values(resource)
                .into_iter()
                .any(|v| compare(v, *op, value, path.case_exact())),
        }
    }

    /// An equality on `attr` (of the resource itself) every match must satisfy: the filter is
    /// `attr eq "v"` or an `and` with it, so a store can narrow its reading to that value.
    pub fn required_eq(&self, attr: &str) -> Option<&str> {
        match self {
            Self::Compare(path, Op::Eq, Value::String(v))
                if path.schema.is_none()
                    && path.sub.is_none()
                    && path.attr.eq_ignore_ascii_case(attr) =>
            {
                Some(v)
            }
            Self::And(a, b) => a.required_eq(attr).or_else(|| b.required_eq(attr)),
            _ => None,
        }
    }
}

fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(found: &Value, op: Op, wanted: &Value, case_exact: bool) -> bool {
    match (found, wanted) {
        (Value::String(f), Value::String(w)) => {
            let (f, w) = if case_exact {
                (f.clone(), w.clone())
            } else {
                (f.to_lowercase(), w.to_lowercase())
            };
            match op {
                Op::Eq => f == w,
                Op::Ne => f != w,
                Op::Co => f.contains(&w),
                Op::Sw => f.starts_with(&w),
                Op::Ew => f.ends_with(&w),
                // Dates are ISO 8601, so their text orders as they do.
                Op::Gt => f > w,
                Op::Ge => f >= w,
                Op::Lt => f < w,
                Op::Le => f <= w,
            }
        }
        (Value::Number(f), Value::Number(w)) => {
            let (Some(f), Some(w)) = (f.as_f64(), w.as_f64()) else {
                return false;
            };
            let order = f.partial_cmp(&w);
            match op {
                Op::Eq => order == Some(Ordering::Equal),
                Op::Ne => order != Some(Ordering::Equal),
                Op::Gt => order == Some(Ordering::Greater),
                Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
                Op::Lt => order == Some(Ordering::Less),
                Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
                Op::Co | Op::Sw | Op::Ew => false,
            }
        }
        (Value::Bool(f), Value::Bool(w)) => match op {
            Op::Eq => f == w,
            Op::Ne => f != w,
            _ => false,
        },
        // Entra writes booleans as "True"/"False" in some places.
        (Value::Bool(f), Value::String(w)) if matches!(op, Op::Eq | Op::Ne) => {
            let same = w.eq_ignore_ascii_case(if *f { "true" } else { "false" });
            (op == Op::Eq) == same
        }
        (_, Value::Null) => op == Op::Ne,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "2819c223",
            "userName": "Ada.Lovelace@acme.example",
            "externalId": "E-17",
            "active": true,
            "emails": [{"value": "ada@acme.example", "type": "work", "primary": true}],
            "meta": {"lastModified": "2026-12-01T10:00:00Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Engineering", "manager": {"value": "99"}
            },
            "members": [{"value": "u1"}, {"value": "u2"}],
        })
    }

    fn check(filter: &str) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&user())
    }

    #[test]
    fn what_the_idps_send() {
        assert!(
            check(r#"userName eq "ada.lovelace@acme.example""#),
            "userName is case-insensitive"
        );
        assert!(check(r#"externalId eq "E-17""#));
        assert!(
            !check(r#"externalId eq "e-17""#),
            "externalId is case-exact"
        );
        assert!(check(r#"id eq "2819c223" and members[value eq "u2"]"#));
        assert!(!check(r#"id eq "2819c223" and members[value eq "u3"]"#));
        assert!(check(r#"emails[type eq "work" and value co "@acme"]"#));
        assert!(check(r#"emails.value sw "ada""#));
        assert!(check(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "engineering""#
        ));
        assert!(check(r#"meta.lastModified gt "2026-11-30T00:00:00Z""#));
        assert!(check("active eq true and title ne \"CEO\""));
        assert!(check("not (active eq false) or userName pr"));
        assert!(check("(title pr) or (userName ew \"example\")"));
        assert!(!check("title pr"));
    }

    #[test]
    fn an_equality_narrows_the_reading() {
        let f = Filter::parse(r#"id eq "7" and members[value eq "u"]"#).expect("filter");
        assert_eq!(f.required_eq("id"), Some("7"));
        assert_eq!(f.required_eq("userName"), None);
        let f = Filter::parse(r#"userName eq "a" or userName eq "b""#).expect("filter");
        assert_eq!(f.required_eq("userName"), None, "an or narrows nothing");
    }

    #[test]
    fn bad_filters_are_invalid_filter_errors() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName eq "unclosed"#,
            r#"userName zz "x""#,
            "userName eq bare",
            r#"(userName eq "x""#,
            r#"emails[type eq "work""#,
            r#"userName eq "x" garbage"#,
            "not userName pr",
            &"(".repeat(40),
        ] {
            let err = Filter::parse(bad).expect_err(bad);
            assert_eq!(err.scim_type, Some("invalidFilter"), "{bad}: {err}");
        }
        assert!(Filter::parse(&format!("userName eq \"{}\"", "x".repeat(5_000))).is_err());
        // Found by fuzzing: an attribute whose fourth byte is inside a multi-byte character.
        assert!(Filter::parse("C?u\u{82}\n").is_err());
        assert!(Filter::parse("urnä eq 1").is_err());
    }
}
