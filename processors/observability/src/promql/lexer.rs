//! Splits a PromQL expression into tokens. Grafana's template variables (`$job`,
//! `${datasource}`, `$__rate_interval`) are tokens of their own, so dashboard queries lex as
//! they are written.

use super::ParseError;

/// One token and where it starts (a byte offset into the expression).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: Tok,
    pub(crate) at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A metric, label, function or keyword name.
    Ident(String),
    Number(String),
    /// `5m`, `1h30m`.
    Duration(String),
    /// The unquoted contents of a string literal.
    Str(String),
    /// A Grafana template variable, by name: `$job` and `${job}` are both `job`.
    Var(String),
    /// Brackets, commas, colons, `@` and the operators, as written.
    Punct(&'static str),
}

const PUNCTS: &[&str] = &[
    "==", "!=", "<=", ">=", "=~", "!~", "(", ")", "{", "}", "[", "]", ",", ":", "@", "+", "-", "*",
    "/", "%", "^", "<", ">", "=",
];

const DURATION_UNITS: &[char] = &['s', 'm', 'h', 'd', 'w', 'y'];

pub(crate) fn tokenize(expr: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<(usize, char)> = expr.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let next = chars.get(i + 1).map(|&(_, c)| c);
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = scan(&chars, i, |c| {
                c.is_ascii_alphanumeric() || c == '_' || c == ':'
            });
            tokens.push(token(Tok::Ident(text(&chars, i, end)), at));
            i = end;
        } else if c.is_ascii_digit() || c == '.' && next.is_some_and(|n| n.is_ascii_digit()) {
            let (kind, end) = number_or_duration(&chars, i);
            tokens.push(token(kind, at));
            i = end;
        } else if c == '"' || c == '\'' || c == '`' {
            let (value, end) = string(&chars, i).ok_or_else(|| ParseError {
                at,
                message: "unterminated string".to_owned(),
            })?;
            tokens.push(token(Tok::Str(value), at));
            i = end;
        } else if c == '$' {
            let (name, end) = variable(&chars, i).ok_or_else(|| ParseError {
                at,
                message: "malformed template variable".to_owned(),
            })?;
            tokens.push(token(Tok::Var(name), at));
            i = end;
        } else {
            let rest = &expr[at..];
            let punct = PUNCTS
                .iter()
                .find(|p| rest.starts_with(**p))
                .ok_or_else(|| ParseError {
                    at,
                    message: format!("unexpected character {c:?}"),
                })?;
            tokens.push(token(Tok::Punct(punct), at));
            i += punct.len();
        }
    }
    Ok(tokens)
}

fn token(kind: Tok, at: usize) -> Token {
    Token { kind, at }
}

fn scan(chars: &[(usize, char)], from: usize, keep: impl Fn(char) -> bool) -> usize {
    let mut end = from;
    while end < chars.len() && keep(chars[end].1) {
        end += 1;
    }
    end
}

fn text(chars: &[(usize, char)], from: usize, to: usize) -> String {
    chars[from..to].iter().map(|&(_, c)| c).collect()
}

/// `0.99`, `1e3`, or a duration when a unit letter follows the digits (`30s`, `1h30m`).
fn number_or_duration(chars: &[(usize, char)], from: usize) -> (Tok, usize) {
    let digits = scan(chars, from, |c| c.is_ascii_digit());
    if chars
        .get(digits)
        .is_some_and(|&(_, c)| DURATION_UNITS.contains(&c))
    {
        let end = scan(chars, from, |c| {
            c.is_ascii_digit() || DURATION_UNITS.contains(&c)
        });
        return (Tok::Duration(text(chars, from, end)), end);
    }
    let mut end = scan(chars, from, |c| c.is_ascii_digit() || c == '.');
    if chars.get(end).is_some_and(|&(_, c)| c == 'e' || c == 'E') {
        let mut exp = end + 1;
        if chars.get(exp).is_some_and(|&(_, c)| c == '+' || c == '-') {
            exp += 1;
        }
        let exp_end = scan(chars, exp, |c| c.is_ascii_digit());
        if exp_end > exp {
            end = exp_end;
        }
    }
    (Tok::Number(text(chars, from, end)), end)
}

/// A quoted string; backslash escapes are kept as the character they escape, except in raw
/// (backtick) strings.
fn string(chars: &[(usize, char)], from: usize) -> Option<(String, usize)> {
    let quote = chars[from].1;
    let mut value = String::new();
    let mut i = from + 1;
    while i < chars.len() {
        let c = chars[i].1;
        if c == quote {
            return Some((value, i + 1));
        }
        if c == '\\' && quote != '`' {
            i += 1;
            value.push(chars.get(i)?.1);
        } else {
            value.push(c);
        }
        i += 1;
    }
    None
}

/// `$name` or `${name}` (also `${name:format}`, whose format is dropped).
fn variable(chars: &[(usize, char)], from: usize) -> Option<(String, usize)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.get(from + 1)?.1 == '{' {
        let end = scan(chars, from + 2, |c| c != '}');
        chars.get(end)?;
        let inner = text(chars, from + 2, end);
        let name = inner.split(':').next().unwrap_or_default().to_owned();
        return (!name.is_empty() && name.chars().all(is_name)).then_some((name, end + 1));
    }
    let end = scan(chars, from + 1, is_name);
    (end > from + 1).then(|| (text(chars, from + 1, end), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(expr: &str) -> Vec<Tok> {
        tokenize(expr)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn lexes_selectors_ranges_and_variables() {
        assert_eq!(
            kinds(r#"rate(x_total{job=~"$job"}[$__rate_interval]) > 1e3"#),
            vec![
                Tok::Ident("rate".into()),
                Tok::Punct("("),
                Tok::Ident("x_total".into()),
                Tok::Punct("{"),
                Tok::Ident("job".into()),
                Tok::Punct("=~"),
                Tok::Str("$job".into()),
                Tok::Punct("}"),
                Tok::Punct("["),
                Tok::Var("__rate_interval".into()),
                Tok::Punct("]"),
                Tok::Punct(")"),
                Tok::Punct(">"),
                Tok::Number("1e3".into()),
            ]
        );
    }

    #[test]
    fn lexes_durations_subqueries_and_braced_variables() {
        assert_eq!(
            kinds("x[1h30m:5m] ${datasource} 0.99"),
            vec![
                Tok::Ident("x".into()),
                Tok::Punct("["),
                Tok::Duration("1h30m".into()),
                Tok::Punct(":"),
                Tok::Duration("5m".into()),
                Tok::Punct("]"),
                Tok::Var("datasource".into()),
                Tok::Number("0.99".into()),
            ]
        );
    }

    #[test]
    fn rejects_unterminated_strings_and_stray_characters() {
        assert!(tokenize(r#"x{a="b}"#).is_err());
        assert!(tokenize("x ; y").is_err());
        assert!(tokenize("$").is_err());
    }
}
