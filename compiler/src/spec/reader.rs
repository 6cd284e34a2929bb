//! Typed, line-aware access to a parsed TOML document: the one TOML reader of mnistc, used by
//! `model.toml` ([`super::parse`]) and by the search-space file ([`crate::search::space`]).
//!
//! `toml::de::DeTable` keeps the byte span of every key and value; this module turns spans
//! into line numbers and wraps each lookup so that every error names the file, the key path, the
//! line and what is allowed. It knows nothing about models or searches.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{InvalidKind, SpecError};

/// The largest model or search-space file mnistc reads: the shipped ones are a few KB, and a
/// bigger file is refused before it is read or parsed.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a model or search-space file as UTF-8 text, refusing one over [`MAX_FILE_BYTES`].
///
/// # Errors
/// [`SpecError::Io`] naming the file: unreadable, a directory, too large, or not UTF-8.
pub fn read_text(path: &Path) -> Result<String, SpecError> {
    let io = |source| SpecError::Io { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {} KiB; a model or search-space file is a few KB", MAX_FILE_BYTES >> 10),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (invalid byte at offset {}): is it a TOML file?", e.utf8_error().valid_up_to()),
        ))
    })
}

/// The text being parsed and its name, with a line index.
pub(crate) struct Source<'s> {
    pub origin: &'s str,
    line_starts: Vec<usize>,
    /// Keys of the document's top-level table (for a hint when one lands in a table by mistake).
    top_level_keys: &'static [&'static str],
}

impl<'s> Source<'s> {
    pub fn new(origin: &'s str, text: &str, top_level_keys: &'static [&'static str]) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        Source { origin, line_starts, top_level_keys }
    }

    /// Parses `text` (the text this source indexes) and returns its root table, or the TOML
    /// parser's error with its line and column.
    pub fn parse<'i>(&self, text: &'i str) -> Result<Spanned<DeTable<'i>>, SpecError> {
        DeTable::parse(text).map_err(|e| syntax_error(self, e.span(), e.message()))
    }

    /// The root table of a parsed document.
    pub fn root<'a, 'i>(&'a self, doc: &'a Spanned<DeTable<'i>>) -> Table<'a, 'i> {
        Table::new(self, String::new(), 1, doc.get_ref())
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset).max(1)
    }

    /// 1-based column of a byte offset (in bytes).
    pub fn column(&self, offset: usize) -> usize {
        let line = self.line(offset);
        offset - self.line_starts[line - 1] + 1
    }

    pub fn error(
        &self,
        line: usize,
        key: impl Into<String>,
        kind: InvalidKind,
        message: impl Into<String>,
    ) -> SpecError {
        SpecError::Invalid { origin: self.origin.to_string(), line, key: key.into(), message: message.into(), kind }
    }
}

/// A TOML table together with its key path (`layers[2]`, `train.augment`).
pub(crate) struct Table<'a, 'i> {
    pub src: &'a Source<'a>,
    pub path: String,
    pub line: usize,
    table: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(src: &'a Source<'a>, path: String, line: usize, table: &'a DeTable<'i>) -> Self {
        Table { src, path, line, table }
    }

    /// The key path of `key` inside this table.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    /// Rejects keys that are not in `allowed`, reporting the first one in file order.
    pub fn check_keys(&self, allowed: &[&str], context: &str) -> Result<(), SpecError> {
        let mut unknown: Vec<(&Spanned<std::borrow::Cow<'i, str>>, usize)> = self
            .table
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| (k, k.span().start))
            .collect();
        unknown.sort_by_key(|&(_, start)| start);
        if let Some((key, start)) = unknown.first() {
            let name = key.get_ref().as_ref();
            let suggestion = if !self.path.is_empty() && self.src.top_level_keys.contains(&name) {
                format!(
                    "`{name}` is a top-level key, but TOML puts every key written after a \
                     [table] header into that table: move it above the first [table] header; "
                )
            } else {
                closest(name, allowed).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default()
            };
            return Err(self.src.error(
                self.src.line(*start),
                self.key_path(name),
                InvalidKind::UnknownKey,
                format!("unknown key {context}; {suggestion}allowed keys: {}", allowed.join(", ")),
            ));
        }
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'a, 'i>> {
        self.table.get_key_value(key).map(|(k, v)| Value {
            src: self.src,
            path: self.key_path(key),
            line: self.src.line(k.span().start),
            value: v,
        })
    }

    /// The value of a required `key`.
    pub fn require(&self, key: &str, what: &str) -> Result<Value<'a, 'i>, SpecError> {
        self.get(key).ok_or_else(|| {
            self.src.error(self.line, self.key_path(key), InvalidKind::Missing, format!("missing; {what}"))
        })
    }

    /// Line of `key` if present, else the table's line.
    pub fn line_of(&self, key: &str) -> usize {
        self.get(key).map_or(self.line, |v| v.line)
    }
}

/// One value with its key path and line.
pub(crate) struct Value<'a, 'i> {
    pub src: &'a Source<'a>,
    pub path: String,
    pub line: usize,
    value: &'a Spanned<DeValue<'i>>,
}

/// How an error message names a TOML value's type ("an integer", "a table", ...).
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Value<'a, 'i> {
    pub fn err(&self, kind: InvalidKind, message: impl Into<String>) -> SpecError {
        self.src.error(self.line, self.path.clone(), kind, message)
    }

    /// The TOML value itself (to dispatch on its type).
    pub fn raw(&self) -> &'a DeValue<'i> {
        self.value.get_ref()
    }

    /// "expected EXPECTED, found TYPE".
    pub fn wrong_type(&self, expected: &str) -> SpecError {
        self.err(InvalidKind::WrongType, format!("expected {expected}, found {}", type_name(self.value.get_ref())))
    }

    /// A signed integer.
    pub fn int(&self) -> Result<i64, SpecError> {
        match self.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.err(InvalidKind::BadValue, format!("integer {i} does not fit in 64 bits"))),
            _ => Err(self.wrong_type("an integer")),
        }
    }

    /// An integer in `min..=max`.
    pub fn uint(&self, min: u64, max: u64) -> Result<u64, SpecError> {
        let v = self.int()?;
        if v < 0 || (v as u64) < min || (v as u64) > max {
            return Err(self.err(InvalidKind::BadValue, format!("{v} is out of range; allowed: {min}..={max}")));
        }
        Ok(v as u64)
    }

    /// An integer in `min..=max` as `usize`.
    pub fn usize(&self, min: usize, max: usize) -> Result<usize, SpecError> {
        Ok(self.uint(min as u64, max as u64)? as usize)
    }

    /// A finite number (integers are accepted).
    pub fn float(&self) -> Result<f64, SpecError> {
        let v = match self.value.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .replace('_', "")
                .parse::<f64>()
                .map_err(|_| self.err(InvalidKind::BadValue, format!("cannot read {f} as a number")))?,
            DeValue::Integer(_) => self.int()? as f64,
            _ => return Err(self.wrong_type("a number")),
        };
        if !v.is_finite() {
            return Err(self.err(InvalidKind::BadValue, "must be a finite number"));
        }
        Ok(v)
    }

    /// A number in a range; `min_open`/`max_open` make the bound exclusive.
    pub fn float_in(&self, min: f64, min_open: bool, max: f64, max_open: bool) -> Result<f64, SpecError> {
        let v = self.float()?;
        let low_ok = if min_open { v > min } else { v >= min };
        let high_ok = if max_open { v < max } else { v <= max };
        if !(low_ok && high_ok) {
            let l = if min_open { "(" } else { "[" };
            let h = if max_open { ")" } else { "]" };
            let max = if max == f64::MAX { "inf".to_string() } else { max.to_string() };
            return Err(self.err(InvalidKind::BadValue, format!("{v} is out of range; allowed: {l}{min}, {max}{h}")));
        }
        Ok(v)
    }

    pub fn bool(&self) -> Result<bool, SpecError> {
        match self.value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type("true or false")),
        }
    }

    pub fn str(&self) -> Result<&'a str, SpecError> {
        match self.value.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    /// One of a fixed set of strings.
    pub fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, SpecError> {
        let s = self.str()?;
        choices.iter().find(|(name, _)| *name == s).map(|&(_, v)| v).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            self.err(InvalidKind::BadValue, format!("`{s}` is not allowed; use one of: {}", names.join(", ")))
        })
    }

    /// An integer `n` (meaning `[n, n]`) or a two-element array `[h, w]`, each in `min..=max`.
    pub fn pair(&self, min: usize, max: usize) -> Result<[usize; 2], SpecError> {
        match self.value.get_ref() {
            DeValue::Integer(_) => {
                let v = self.usize(min, max)?;
                Ok([v, v])
            }
            DeValue::Array(items) => {
                if items.len() != 2 {
                    return Err(self.err(
                        InvalidKind::BadValue,
                        format!("expected an integer or [height, width], found an array of {} elements", items.len()),
                    ));
                }
                let mut out = [0; 2];
                for (i, item) in items.iter().enumerate() {
                    let v = Value {
                        src: self.src,
                        path: format!("{}[{i}]", self.path),
                        line: self.src.line(item.span().start),
                        value: item,
                    };
                    out[i] = v.usize(min, max)?;
                }
                Ok(out)
            }
            _ => Err(self.wrong_type("an integer or [height, width]")),
        }
    }

    /// The elements of a non-empty array.
    pub fn items(&self) -> Result<Vec<Value<'a, 'i>>, SpecError> {
        let DeValue::Array(items) = self.value.get_ref() else {
            return Err(self.wrong_type("an array"));
        };
        if items.is_empty() {
            return Err(self.err(InvalidKind::BadValue, "the list is empty; give at least one choice"));
        }
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| Value {
                src: self.src,
                path: format!("{}[{i}]", self.path),
                line: self.src.line(item.span().start),
                value: item,
            })
            .collect())
    }

    pub fn table(&self) -> Result<Table<'a, 'i>, SpecError> {
        match self.value.get_ref() {
            DeValue::Table(t) => Ok(Table::new(self.src, self.path.clone(), self.line, t)),
            _ => Err(self.wrong_type("a table")),
        }
    }

    /// An array of tables (`[[layers]]` or `layers = [{...}, ...]`).
    pub fn tables(&self) -> Result<Vec<Table<'a, 'i>>, SpecError> {
        let items = match self.value.get_ref() {
            DeValue::Array(items) => items,
            _ => return Err(self.wrong_type("an array of tables ([[layers]])")),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.path);
            let line = self.src.line(item.span().start);
            match item.get_ref() {
                DeValue::Table(t) => out.push(Table::new(self.src, path, line, t)),
                other => {
                    return Err(self.src.error(
                        line,
                        path,
                        InvalidKind::WrongType,
                        format!("expected a table, found {}", type_name(other)),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The allowed name closest to `name`, when it is close enough to be a likely typo.
pub(crate) fn closest<'s>(name: &str, allowed: &[&'s str]) -> Option<&'s str> {
    allowed
        .iter()
        .map(|&a| (strsim::levenshtein(name, a), a))
        .filter(|&(d, a)| d <= 2.max(a.len() / 4) && d < a.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, a)| a)
}

/// Byte range to line, for the TOML parser's own errors.
pub(crate) fn syntax_error(src: &Source<'_>, span: Option<Range<usize>>, message: &str) -> SpecError {
    let start = span.map_or(0, |s| s.start);
    SpecError::Syntax {
        origin: src.origin.to_string(),
        line: src.line(start),
        column: src.column(start),
        message: message.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let src = Source::new("x", "ab\ncd\n\nef", &[]);
        assert_eq!(src.line(0), 1);
        assert_eq!(src.line(2), 1);
        assert_eq!(src.line(3), 2);
        assert_eq!(src.line(7), 4);
        assert_eq!(src.column(4), 2);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("kernal", &["kernel", "filters"]), Some("kernel"));
        assert_eq!(closest("zzz", &["kernel", "filters"]), None);
    }
}
