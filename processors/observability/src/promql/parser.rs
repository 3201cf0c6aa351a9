//! Recursive descent over the tokens, with PromQL's operator precedence.

use super::lexer::{Tok, Token};
use super::{Expr, Group, Grouping, Matcher, Matching, ParseError, Selector, Window};

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Binary operators by precedence, loosest first; `^` is the only right-associative one.
const PRECEDENCE: &[&[&str]] = &[
    &["or"],
    &["and", "unless"],
    &["==", "!=", "<=", ">=", "<", ">"],
    &["+", "-"],
    &["*", "/", "%", "atan2"],
    &["^"],
];

pub(crate) fn parse(tokens: &[Token], len: usize) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        len,
    };
    let expr = parser.expr(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(_) => Err(parser.error("expected an operator or the end of the expression")),
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    len: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|t| &t.kind)
    }

    fn error(&self, message: &str) -> ParseError {
        let at = self.tokens.get(self.pos).map_or(self.len, |t| t.at);
        ParseError {
            at,
            message: message.to_owned(),
        }
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.peek().cloned();
        self.pos += usize::from(tok.is_some());
        tok
    }

    fn is_punct(&self, punct: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(p)) if *p == punct)
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(name)) if name.eq_ignore_ascii_case(word))
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = self.is_punct(punct);
        self.pos += usize::from(found);
        found
    }

    fn expect_punct(&mut self, punct: &str) -> Result<(), ParseError> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {punct:?}")))
        }
    }

    /// The binary operator at the cursor, if it binds at `min` or tighter.
    fn operator(&self, min: usize) -> Option<(usize, String)> {
        let op = match self.peek()? {
            Tok::Punct(p) => (*p).to_owned(),
            Tok::Ident(word) => word.to_ascii_lowercase(),
            _ => return None,
        };
        let level = PRECEDENCE
            .iter()
            .position(|ops| ops.contains(&op.as_str()))?;
        (level >= min).then_some((level, op))
    }

    fn expr(&mut self, min: usize) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        while let Some((level, op)) = self.operator(min) {
            self.pos += 1;
            if self.is_keyword("bool") {
                self.pos += 1;
            }
            let matching = self.matching()?;
            let next = if op == "^" { level } else { level + 1 };
            let rhs = self.expr(next)?;
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching,
            };
        }
        Ok(lhs)
    }

    fn matching(&mut self) -> Result<Option<Matching>, ParseError> {
        let on = self.is_keyword("on");
        if !on && !self.is_keyword("ignoring") {
            return Ok(None);
        }
        self.pos += 1;
        let labels = self.label_list()?;
        let left = self.is_keyword("group_left");
        let group = if left || self.is_keyword("group_right") {
            self.pos += 1;
            let labels = if self.is_punct("(") {
                self.label_list()?
            } else {
                Vec::new()
            };
            Some(Group { left, labels })
        } else {
            None
        };
        Ok(Some(Matching { on, labels, group }))
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_punct("-") || self.eat_punct("+") {
            return Ok(Expr::Unary(Box::new(self.unary()?)));
        }
        let mut expr = self.primary()?;
        if self.eat_punct("[") {
            let range = self.window()?;
            if self.eat_punct(":") && !self.is_punct("]") {
                self.window()?;
            }
            self.expect_punct("]")?;
            expr = Expr::Range {
                expr: Box::new(expr),
                range,
            };
        }
        if self.is_keyword("offset") {
            self.pos += 1;
            self.eat_punct("-");
            self.window()?;
        }
        if self.eat_punct("@") {
            match self.next() {
                Some(Tok::Number(_)) => {}
                Some(Tok::Ident(f)) if f == "start" || f == "end" => {
                    self.expect_punct("(")?;
                    self.expect_punct(")")?;
                }
                _ => return Err(self.error("expected a time after @")),
            }
        }
        Ok(expr)
    }

    fn window(&mut self) -> Result<Window, ParseError> {
        match self.next() {
            Some(Tok::Duration(d)) => Ok(Window::Duration(d)),
            Some(Tok::Var(v)) => Ok(Window::Variable(v)),
            _ => {
                self.pos -= 1;
                Err(self.error("expected a duration"))
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(tok) = self.next() else {
            return Err(self.error("expected an expression"));
        };
        match tok {
            Tok::Number(n) => Ok(Expr::Number(n)),
            Tok::Str(s) => Ok(Expr::String(s)),
            Tok::Var(v) => Ok(Expr::Variable(v)),
            Tok::Punct("(") => {
                let inner = self.expr(0)?;
                self.expect_punct(")")?;
                Ok(Expr::Paren(Box::new(inner)))
            }
            Tok::Punct("{") => {
                let matchers = self.matchers()?;
                Ok(Expr::Selector(Selector {
                    name: None,
                    matchers,
                }))
            }
            Tok::Ident(word)
                if word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan") =>
            {
                Ok(Expr::Number(word))
            }
            Tok::Ident(word) if AGGREGATIONS.contains(&word.to_ascii_lowercase().as_str()) => {
                self.aggregation(word.to_ascii_lowercase())
            }
            Tok::Ident(func) if self.is_punct("(") => {
                let args = self.args()?;
                Ok(Expr::Call { func, args })
            }
            Tok::Ident(name) => {
                let matchers = if self.eat_punct("{") {
                    self.matchers()?
                } else {
                    Vec::new()
                };
                Ok(Expr::Selector(Selector {
                    name: Some(name),
                    matchers,
                }))
            }
            _ => {
                self.pos -= 1;
                Err(self.error("expected an expression"))
            }
        }
    }

    fn aggregation(&mut self, op: String) -> Result<Expr, ParseError> {
        let mut grouping = self.grouping()?;
        let args = self.args()?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        if args.is_empty() {
            return Err(self.error(&format!("{op} needs an argument")));
        }
        Ok(Expr::Aggregate { op, grouping, args })
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        if self.is_keyword("by") {
            self.pos += 1;
            return Ok(Some(Grouping::By(self.label_list()?)));
        }
        if self.is_keyword("without") {
            self.pos += 1;
            return Ok(Some(Grouping::Without(self.label_list()?)));
        }
        Ok(None)
    }

    /// `(expr, expr, ...)`.
    fn args(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect_punct("(")?;
        let mut args = Vec::new();
        while !self.eat_punct(")") {
            args.push(self.expr(0)?);
            if !self.eat_punct(",") && !self.is_punct(")") {
                return Err(self.error("expected \",\" or \")\""));
            }
        }
        Ok(args)
    }

    /// `(label, label, ...)`: any name, keywords included.
    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect_punct("(")?;
        let mut labels = Vec::new();
        while !self.eat_punct(")") {
            match self.next() {
                Some(Tok::Ident(label)) => labels.push(label),
                _ => {
                    self.pos -= 1;
                    return Err(self.error("expected a label name"));
                }
            }
            if !self.eat_punct(",") && !self.is_punct(")") {
                return Err(self.error("expected \",\" or \")\""));
            }
        }
        Ok(labels)
    }

    /// `label op "value", ...}`, the opening brace already read.
    fn matchers(&mut self) -> Result<Vec<Matcher>, ParseError> {
        let mut matchers = Vec::new();
        while !self.eat_punct("}") {
            let (Some(Tok::Ident(label)), Some(Tok::Punct(op)), Some(Tok::Str(value))) = (
                self.peek().cloned(),
                self.peek_at(1).cloned(),
                self.peek_at(2).cloned(),
            ) else {
                return Err(self.error("expected a matcher: label, =, !=, =~ or !~, and a string"));
            };
            if !["=", "!=", "=~", "!~"].contains(&op) {
                return Err(self.error("expected =, !=, =~ or !~"));
            }
            self.pos += 3;
            matchers.push(Matcher { label, op, value });
            if !self.eat_punct(",") && !self.is_punct("}") {
                return Err(self.error("expected \",\" or \"}\""));
            }
        }
        Ok(matchers)
    }
}
