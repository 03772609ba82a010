//! A Python value as a pickle describes it, and the accessors the conversion reads it with.

use std::fmt;

/// A Python value as the pickle describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Set(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A class or function named by the pickle (`module.name`).
    Global {
        module: String,
        name: String,
    },
    /// What calling `callable(*args)` (then BUILD, APPENDS, SETITEMS) would have made.
    Object(Box<Object>),
}

/// A recorded call: an instance of a class, or a value built by a function such as
/// `re._compile(pattern, flags)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub callable: Value,
    pub args: Vec<Value>,
    /// BUILD's argument: usually the instance `__dict__`.
    pub state: Option<Value>,
    /// Items added by APPEND(S) / SETITEM(S) (list and dict subclasses).
    pub items: Vec<Value>,
    pub entries: Vec<(Value, Value)>,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some((*b).into()),
            _ => None,
        }
    }

    /// A number as Python would print it (ints and floats alike).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// Items of a list, tuple or set.
    pub fn items(&self) -> &[Value] {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => v,
            Value::Object(o) => &o.items,
            _ => &[],
        }
    }

    /// Entries of a dict (or of a dict subclass' instance).
    pub fn entries(&self) -> &[(Value, Value)] {
        match self {
            Value::Dict(d) => d,
            Value::Object(o) => &o.entries,
            _ => &[],
        }
    }

    /// A dict's value under the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        // The last of a repeated key wins, as in Python.
        self.entries()
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The class (or function) an object was made by: `("module", "Name")`.
    pub fn class(&self) -> Option<(&str, &str)> {
        match self {
            Value::Object(o) => match &o.callable {
                Value::Global { module, name } => Some((module, name)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The class name alone (`StaticMTRoute`).
    pub fn class_name(&self) -> Option<&str> {
        self.class().map(|(_, name)| name)
    }

    /// An instance attribute: the object's `__dict__` entry (BUILD's state, or the
    /// first part of a `(dict, slots)` state).
    pub fn attr(&self, name: &str) -> Option<&Value> {
        let Value::Object(o) = self else { return None };
        match o.state.as_ref()? {
            state @ Value::Dict(_) => state.get(name),
            Value::Tuple(parts) => parts.iter().find_map(|p| p.get(name)),
            _ => None,
        }
    }

    /// The arguments an object was made with (`re._compile(pattern, flags)`).
    pub fn args(&self) -> &[Value] {
        match self {
            Value::Object(o) => &o.args,
            _ => &[],
        }
    }

    /// The pattern of a compiled regular expression (`re._compile(pattern, flags)`),
    /// or a plain string.
    pub fn pattern(&self) -> Option<&str> {
        match self.class() {
            Some(("re", "_compile")) => self.args().first()?.as_str(),
            _ => self.as_str(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => write!(f, "None"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::List(_) | Value::Tuple(_) | Value::Set(_) => {
                write!(f, "[{} items]", self.items().len())
            }
            Value::Dict(d) => write!(f, "{{{} entries}}", d.len()),
            Value::Global { module, name } => write!(f, "{module}.{name}"),
            Value::Object(_) => match self.class() {
                Some((m, n)) => write!(f, "<{m}.{n}>"),
                None => write!(f, "<object>"),
            },
        }
    }
}
