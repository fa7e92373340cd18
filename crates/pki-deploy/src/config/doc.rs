//! Positions in the config text. The document is parsed once with the span of every key and
//! value ([`toml::de::DeTable`]); each part of the config (the frame, a backend, each service)
//! then reads its own table, key by key or into a serde struct of its own, and every error
//! names the line of the key at fault, or of the table when the key is missing.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::error::{Error, Result};
use crate::service::{Invalid, Kind, Paths};

/// The config file: its name, where its lines start, and where relative paths start from.
#[derive(Debug)]
pub(crate) struct Source {
    file: PathBuf,
    starts: Vec<usize>,
    base: PathBuf,
}

impl Source {
    /// The source of `text`, read from `file`.
    pub(crate) fn new(text: &str, file: &Path) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let base = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Absolute, so that what the state file keys by path does not depend on where the
        // config was named from.
        let base = std::path::absolute(&base).unwrap_or(base);
        Self {
            file: file.to_path_buf(),
            starts,
            base,
        }
    }

    /// The config file.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// The directory relative paths start from.
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// The 1-based line of a byte offset (binary search: a config may list ten thousand
    /// certificates).
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// An error at the line of `span`, if known.
    pub(crate) fn error(&self, span: Option<&Range<usize>>, message: String) -> Error {
        Error::Config {
            file: self.file.clone(),
            line: span.map(|s| self.line(s.start)),
            message,
        }
    }

    /// An error at a line.
    pub(crate) fn error_at(&self, line: usize, message: String) -> Error {
        Error::Config {
            file: self.file.clone(),
            line: Some(line),
            message,
        }
    }

    /// A path as configured, relative to the config's directory.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        super::resolve(&self.base, p)
    }

    /// The whole document as the top-level table.
    pub(crate) fn document<'i>(&'i self, text: &'i str) -> Result<Table<'i>> {
        let doc = DeTable::parse(text)
            .map_err(|e| self.error(e.span().as_ref(), e.message().to_owned()))?;
        let span = doc.span();
        Ok(Table::from_parts(
            self,
            String::new(),
            span,
            doc.into_inner(),
        ))
    }
}

/// One entry's positions: its key and its value.
#[derive(Debug)]
struct Position<'i> {
    key: std::borrow::Cow<'i, str>,
    key_span: Range<usize>,
    value_span: Range<usize>,
}

/// A table of the config. Keys are taken out one by one ([`Table::take`]) or all at once into
/// a serde struct ([`Table::read`]); every error names the key's line.
#[derive(Debug)]
pub(crate) struct Table<'i> {
    src: &'i Source,
    /// What errors are prefixed with, separator included (`backend.`, `certificate "web": `).
    scope: String,
    span: Range<usize>,
    entries: DeTable<'i>,
    positions: Vec<Position<'i>>,
}

impl<'i> Table<'i> {
    fn from_parts(
        src: &'i Source,
        scope: String,
        span: Range<usize>,
        entries: DeTable<'i>,
    ) -> Self {
        let positions = entries
            .iter()
            .map(|(k, v)| Position {
                key: k.get_ref().clone(),
                key_span: k.span(),
                value_span: v.span(),
            })
            .collect();
        Self {
            src,
            scope,
            span,
            entries,
            positions,
        }
    }

    /// The table a value holds; `scope` prefixes its errors.
    pub(crate) fn of(&self, scope: String, value: Spanned<DeValue<'i>>, key: &str) -> Result<Self> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => Ok(Self::from_parts(self.src, scope, span, t)),
            other => Err(self.error(key, format!("must be a table, not {}", other.type_str()))),
        }
    }

    /// The config source.
    pub(crate) fn source(&self) -> &'i Source {
        self.src
    }

    /// The same table with another prefix for its errors.
    pub(crate) fn rescoped(mut self, scope: String) -> Self {
        self.scope = scope;
        self
    }

    /// The line of the table (its header).
    pub(crate) fn line(&self) -> usize {
        self.src.line(self.span.start)
    }

    /// The line of `key`, else of the table.
    pub(crate) fn line_of(&self, key: &str) -> usize {
        self.positions
            .iter()
            .find(|p| p.key == key)
            .map_or_else(|| self.line(), |p| self.src.line(p.key_span.start))
    }

    /// An error about `key` (at its line, else the table's).
    pub(crate) fn error(&self, key: &str, problem: impl std::fmt::Display) -> Error {
        Error::Config {
            file: self.src.file().to_path_buf(),
            line: Some(self.line_of(key)),
            message: format!("{}{key}: {problem}", self.scope),
        }
    }

    /// Takes a value out.
    pub(crate) fn take(&mut self, key: &str) -> Option<Spanned<DeValue<'i>>> {
        self.entries.remove(key)
    }

    /// Takes a value out and deserializes it.
    pub(crate) fn take_as<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        T::deserialize(ValueDeserializer::from(value))
            .map(Some)
            .map_err(|e| self.error(key, e.message()))
    }

    /// Takes out an array of tables (`[[certificate]]`), each with its own scope.
    pub(crate) fn take_tables(
        &mut self,
        key: &str,
        scope: impl Fn(usize) -> String,
    ) -> Result<Vec<Self>> {
        let Some(value) = self.take(key) else {
            return Ok(Vec::new());
        };
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| self.of(scope(i), v, key))
                .collect(),
            other => Err(self.src.error(
                Some(&span),
                format!(
                    "{}{key}: must be an array of tables, not {}",
                    self.scope,
                    other.type_str()
                ),
            )),
        }
    }

    /// Takes out a table of tables (`[backends.NAME]`): each sub-table with its key, in file
    /// order, `scope` giving each one's error prefix.
    pub(crate) fn take_named_tables(
        &mut self,
        key: &str,
        scope: impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Self)>> {
        let Some(value) = self.take(key) else {
            return Ok(Vec::new());
        };
        let outer = self.of(format!("{}{key}.", self.scope), value, key)?;
        let mut entries: Vec<_> = outer.entries.iter().map(|(k, _)| k.clone()).collect();
        entries.sort_by_key(|k| k.span().start);
        let mut outer = outer;
        let mut tables = Vec::with_capacity(entries.len());
        for k in entries {
            let name = k.get_ref().to_string();
            if let Some(v) = outer.take(&name) {
                tables.push((name.clone(), outer.of(scope(&name), v, &name)?));
            }
        }
        Ok(tables)
    }

    /// Deserializes what is left of the table into `T`. A key `T` does not have is named as
    /// "not a key of `noun`"; a value of the wrong type names its key.
    pub(crate) fn read<T: DeserializeOwned>(&mut self, noun: &str) -> Result<T> {
        self.read_via::<T, T>(noun, T::deserialize)
    }

    /// [`Table::read`] through a function of the deserializer (one that resolves paths, say);
    /// the keys allowed are those of `T`.
    pub(crate) fn read_via<T: DeserializeOwned, U>(
        &mut self,
        noun: &str,
        read: impl FnOnce(ValueDeserializer<'i>) -> std::result::Result<U, toml::de::Error>,
    ) -> Result<U> {
        if let Some(fields) = fields_of::<T>() {
            let unknown = self
                .entries
                .keys()
                .map(|k| k.get_ref().to_string())
                .find(|k| !fields.contains(&k.as_str()));
            if let Some(key) = unknown {
                return Err(self.error(
                    &key,
                    format!(
                        "not a key of {noun} (expected one of {})",
                        fields.join(", ")
                    ),
                ));
            }
        }
        let entries = std::mem::take(&mut self.entries);
        let value = Spanned::new(self.span.clone(), DeValue::Table(entries));
        read(ValueDeserializer::from(value)).map_err(|e| self.serde_error(&e))
    }

    /// Reads the table of a service of kind `K`: its keys, then its own validation.
    pub(crate) fn read_as<K: Kind>(&mut self, paths: &Paths<'_>) -> Result<K> {
        let noun = format!("{} targets", K::NAMES[0]);
        let raw = self.read::<K::Raw>(&noun)?;
        K::from_raw(raw, paths).map_err(|Invalid { key, problem, .. }| self.error(key, problem))
    }

    /// A deserialization error at the line of the key whose value it is about.
    fn serde_error(&self, e: &toml::de::Error) -> Error {
        let position = e.span().and_then(|s| {
            self.positions
                .iter()
                .find(|p| p.value_span.start <= s.start && s.end <= p.value_span.end)
        });
        match position {
            Some(p) => self.error(&p.key, e.message()),
            None => {
                let span = e.span().unwrap_or_else(|| self.span.clone());
                let scope = self.scope.trim_end_matches(['.', ':', ' ']);
                let message = if scope.is_empty() {
                    e.message().to_owned()
                } else {
                    format!("{scope}: {}", e.message())
                };
                self.src.error(Some(&span), message)
            }
        }
    }
}

/// The field names of a struct `T` deserializes from (serde hands them to `deserialize_struct`),
/// or `None` for anything else.
fn fields_of<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that only records the fields a struct asks for.
struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

/// The probe's way of stopping.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> std::result::Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Two {
        #[allow(dead_code)]
        a: Option<String>,
        #[allow(dead_code)]
        b: Option<u32>,
    }

    #[test]
    fn struct_fields_are_found_and_others_are_not_structs() {
        assert_eq!(fields_of::<Two>(), Some(&["a", "b"][..]));
        assert_eq!(fields_of::<String>(), None);
    }

    #[test]
    fn errors_name_the_key_and_its_line() {
        let text = "x = 1\n[t]\na = \"ok\"\nb = \"not a number\"\n";
        let src = Source::new(text, Path::new("/c.toml"));
        let mut doc = src.document(text).unwrap();
        let t = doc.take("t").unwrap();
        let mut t = doc.of("t.".into(), t, "t").unwrap();
        let e = t.read::<Two>("[t]").map(|_| ()).unwrap_err().to_string();
        assert!(e.starts_with("/c.toml:4: t.b: "), "{e}");

        let text = "[t]\na = \"x\"\nc = 1\n";
        let src = Source::new(text, Path::new("/c.toml"));
        let mut doc = src.document(text).unwrap();
        let t = doc.take("t").unwrap();
        let mut t = doc.of("t.".into(), t, "t").unwrap();
        let e = t.read::<Two>("[t]").map(|_| ()).unwrap_err().to_string();
        assert!(e.starts_with("/c.toml:3: t.c: not a key of [t]"), "{e}");
        assert_eq!(t.line_of("missing"), 1);
    }
}
