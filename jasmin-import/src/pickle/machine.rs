//! The pickle machine: opcodes run over an arena of nodes, then materialised into a
//! [`Value`] tree within a budget.

use super::{
    Object, PickleError, Value,
    literals::{long_le, py2_str, quoted, raw_unicode_escape},
};

/// Deepest nesting materialised (a value that contains itself ends here too).
pub(super) const MAX_DEPTH: usize = 200;

/// Values materialised at most per input byte, and in all: a memo GET copies what it
/// refers to, so a small pickle that nests shared references could describe an
/// exponential tree. Jasmin's files describe about one value per 5 bytes.
const VALUES_PER_BYTE: usize = 16;
const MAX_VALUES: usize = 20_000_000;

/// Nodes live in an arena and the stack and memo hold indices, so that a container
/// filled after it was memoised (EMPTY_DICT, BINPUT, SETITEMS) is the same one a later
/// GET returns, as in Python.
#[derive(Debug, Clone)]
enum Node {
    Leaf(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Set(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Object {
        callable: usize,
        args: Vec<usize>,
        state: Option<usize>,
        items: Vec<usize>,
        entries: Vec<(usize, usize)>,
    },
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Values that may still be materialised (see [`VALUES_PER_BYTE`]).
    budget: std::cell::Cell<usize>,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, usize>,
}

/// Reads one pickle from the start of `input`.
pub fn load(input: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine {
        input,
        pos: 0,
        budget: std::cell::Cell::new(
            input
                .len()
                .saturating_mul(VALUES_PER_BYTE)
                .clamp(1024, MAX_VALUES),
        ),
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    let top = m.run()?;
    m.materialise(top, 0)
}

impl Machine<'_> {
    fn malformed(&self, what: &'static str) -> PickleError {
        PickleError::Malformed { at: self.pos, what }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or(PickleError::Truncated(self.pos))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_u32(&mut self) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        usize::try_from(u64::from_le_bytes(self.le()?))
            .map_err(|_| PickleError::Truncated(self.pos))
    }

    /// A text opcode's argument: up to the newline, which is consumed.
    fn line(&mut self) -> Result<&[u8], PickleError> {
        let rest = &self.input[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated(self.input.len()))?;
        let start = self.pos;
        self.pos += n + 1;
        Ok(&self.input[start..start + n])
    }

    fn line_str(&mut self) -> Result<String, PickleError> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .map(str::to_owned)
            .map_err(|_| self.malformed("text argument is not UTF-8"))
    }

    fn utf8(&self, bytes: Vec<u8>) -> Result<String, PickleError> {
        String::from_utf8(bytes).map_err(|_| self.malformed("string is not UTF-8"))
    }

    fn push(&mut self, node: Node) {
        // The arena is bounded by the input (each opcode pushes at most one node).
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    fn leaf(&mut self, value: Value) {
        self.push(Node::Leaf(value));
    }

    /// The stack above the innermost MARK, as CPython keeps it (one stack per mark).
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<usize, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("stack underflow"));
        }
        self.stack.pop().ok_or(self.malformed("stack underflow"))
    }

    fn top(&self) -> Result<usize, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("stack underflow"));
        }
        self.stack
            .last()
            .copied()
            .ok_or(self.malformed("stack underflow"))
    }

    /// Everything above the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<usize>, PickleError> {
        let mark = self.marks.pop().ok_or(self.malformed("no mark"))?;
        if mark > self.stack.len() {
            return Err(self.malformed("mark above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let node = *self
            .memo
            .get(&key)
            .ok_or(self.malformed("memo key not set"))?;
        self.stack.push(node);
        Ok(())
    }

    /// Adds list items to the list (or list-like object) at `target`.
    fn append(&mut self, target: usize, new: Vec<usize>) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::List(items) | Node::Set(items) => items.extend(new),
            Node::Object { items, .. } => items.extend(new),
            _ => return Err(self.malformed("APPEND to a non-list")),
        }
        Ok(())
    }

    fn set_items(&mut self, target: usize, flat: Vec<usize>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return Err(self.malformed("SETITEMS with an odd count"));
        }
        let pairs = flat.chunks(2).map(|p| (p[0], p[1]));
        match &mut self.nodes[target] {
            Node::Dict(entries) => entries.extend(pairs),
            Node::Object { entries, .. } => entries.extend(pairs),
            _ => return Err(self.malformed("SETITEM on a non-dict")),
        }
        Ok(())
    }

    fn call(&mut self, callable: usize, args: Vec<usize>) {
        self.push(Node::Object {
            callable,
            args,
            state: None,
            items: Vec::new(),
            entries: Vec::new(),
        });
    }

    fn args_of(&self, tuple: usize) -> Result<Vec<usize>, PickleError> {
        match &self.nodes[tuple] {
            Node::Tuple(items) => Ok(items.clone()),
            _ => Err(self.malformed("call arguments are not a tuple")),
        }
    }

    fn global(&mut self, module: String, name: String) {
        self.leaf(Value::Global { module, name });
    }

    /// Runs to STOP; the index of the result.
    fn run(&mut self) -> Result<usize, PickleError> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO n
                }
                0x95 => {
                    self.take(8)?; // FRAME length: framing only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                // POP with nothing above the mark discards the mark (CPython's
                // protocol 0 writes that for recursive tuples).
                b'0' => {
                    if self.stack.len() > self.floor() {
                        self.pop()?;
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                b'N' => self.leaf(Value::None),
                0x88 => self.leaf(Value::Bool(true)),
                0x89 => self.leaf(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.leaf(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.leaf(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.leaf(Value::Int(v.into()));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.len_u32()?
                    };
                    let bytes = self.take(n)?.to_vec();
                    let v = long_le(&bytes).ok_or(self.malformed("integer beyond 64 bits"))?;
                    self.leaf(Value::Int(v));
                }
                b'I' | b'L' => {
                    let text = self.line_str()?;
                    let text = text.trim_end_matches('L');
                    let value = match text {
                        "00" if op == b'I' => Value::Bool(false),
                        "01" if op == b'I' => Value::Bool(true),
                        t => Value::Int(t.parse().map_err(|_| self.malformed("bad integer"))?),
                    };
                    self.leaf(value);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.leaf(Value::Float(v));
                }
                b'F' => {
                    let text = self.line_str()?;
                    let v = text.parse().map_err(|_| self.malformed("bad float"))?;
                    self.leaf(Value::Float(v));
                }
                0x8c | b'X' | 0x8d => {
                    let n = match op {
                        0x8c => self.u8()? as usize,
                        b'X' => self.len_u32()?,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    let s = self.utf8(bytes)?;
                    self.leaf(Value::Str(s));
                }
                b'V' => {
                    let line = self.line()?.to_vec();
                    let s = raw_unicode_escape(&line).ok_or(self.malformed("bad UNICODE"))?;
                    self.leaf(Value::Str(s));
                }
                // Python 2 str: text when it is UTF-8 (all Jasmin writes), else bytes.
                b'T' | b'U' => {
                    let n = if op == b'U' {
                        self.u8()? as usize
                    } else {
                        self.len_u32()?
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.leaf(py2_str(bytes));
                }
                b'S' => {
                    let line = self.line()?.to_vec();
                    let bytes = quoted(&line).ok_or(self.malformed("bad STRING"))?;
                    self.leaf(py2_str(bytes));
                }
                b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.len_u32()?,
                        _ => self.len_u64()?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.leaf(Value::Bytes(bytes));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'}' => self.push(Node::Dict(Vec::new())),
                b')' => self.push(Node::Tuple(Vec::new())),
                0x8f => self.push(Node::Set(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items));
                }
                b'd' => {
                    let flat = self.pop_mark()?;
                    self.push(Node::Dict(Vec::new()));
                    let target = self.top()?;
                    self.set_items(target, flat)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(self.malformed("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items));
                }
                b'a' => {
                    let item = self.pop()?;
                    let target = self.top()?;
                    self.append(target, vec![item])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top()?;
                    self.set_items(target, vec![key, value])?;
                }
                b'u' => {
                    let flat = self.pop_mark()?;
                    let target = self.top()?;
                    self.set_items(target, flat)?;
                }
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    self.global(module, name);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.nodes[module], &self.nodes[name]) {
                        (Node::Leaf(Value::Str(m)), Node::Leaf(Value::Str(n))) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(m, n);
                        }
                        _ => return Err(self.malformed("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = self.args_of(args)?;
                    self.call(callable, args);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = self.args_of(args)?;
                    self.call(callable, args);
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.malformed("OBJ without a class"));
                    }
                    let callable = items.remove(0);
                    self.call(callable, items);
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let args = self.pop_mark()?;
                    self.global(module, name);
                    let callable = self.pop()?;
                    self.call(callable, args);
                }
                // A second BUILD adds to the instance's `__dict__`, as Python's does.
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    let merged = match &self.nodes[target] {
                        Node::Object {
                            state: Some(old), ..
                        } => match (&self.nodes[*old], &self.nodes[state]) {
                            (Node::Dict(a), Node::Dict(b)) => {
                                Some(Node::Dict(a.iter().chain(b).copied().collect()))
                            }
                            _ => None,
                        },
                        Node::Object { state: None, .. } => None,
                        _ => return Err(self.malformed("BUILD on a non-object")),
                    };
                    let state = match merged {
                        Some(dict) => {
                            self.nodes.push(dict);
                            self.nodes.len() - 1
                        }
                        None => state,
                    };
                    if let Node::Object { state: slot, .. } = &mut self.nodes[target] {
                        *slot = Some(state);
                    }
                }
                b'p' => {
                    let key = self.line_str()?;
                    let key = key.parse().map_err(|_| self.malformed("bad PUT key"))?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = self.u8()?;
                    self.memo_put(key.into())?;
                }
                b'r' => {
                    let key = self.len_u32()?;
                    self.memo_put(key as u64)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let key = self.line_str()?;
                    let key = key.parse().map_err(|_| self.malformed("bad GET key"))?;
                    self.memo_get(key)?;
                }
                b'h' => {
                    let key = self.u8()?;
                    self.memo_get(key.into())?;
                }
                b'j' => {
                    let key = self.len_u32()?;
                    self.memo_get(key as u64)?;
                }
                _ => return Err(PickleError::Unsupported { op, at }),
            }
        }
    }

    fn materialise(&self, node: usize, depth: usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep(MAX_DEPTH));
        }
        let left = self.budget.get();
        if left == 0 {
            return Err(PickleError::TooLarge(
                MAX_VALUES.min(self.input.len().saturating_mul(VALUES_PER_BYTE).max(1024)),
            ));
        }
        self.budget.set(left - 1);
        let all = |ids: &[usize]| -> Result<Vec<Value>, PickleError> {
            ids.iter()
                .map(|&i| self.materialise(i, depth + 1))
                .collect()
        };
        let pairs = |ids: &[(usize, usize)]| -> Result<Vec<(Value, Value)>, PickleError> {
            ids.iter()
                .map(|&(k, v)| {
                    Ok((
                        self.materialise(k, depth + 1)?,
                        self.materialise(v, depth + 1)?,
                    ))
                })
                .collect()
        };
        Ok(match &self.nodes[node] {
            Node::Leaf(v) => v.clone(),
            Node::List(items) => Value::List(all(items)?),
            Node::Tuple(items) => Value::Tuple(all(items)?),
            Node::Set(items) => Value::Set(all(items)?),
            Node::Dict(entries) => Value::Dict(pairs(entries)?),
            Node::Object {
                callable,
                args,
                state,
                items,
                entries,
            } => {
                let callable = self.materialise(*callable, depth + 1)?;
                let args = all(args)?;
                let state = state.map(|s| self.materialise(s, depth + 1)).transpose()?;
                simplify(Object {
                    callable,
                    args,
                    state,
                    items: all(items)?,
                    entries: pairs(entries)?,
                })
            }
        })
    }
}

/// The calls that only rebuild plain data become that data: `copyreg._reconstructor`
/// (protocol 0/1 instances) becomes an instance of its class; `builtins.set`,
/// `frozenset`, `list`, `dict`, `collections.OrderedDict` their containers;
/// `_codecs.encode(text, "latin1")` (how protocol 2 writes bytes) the bytes.
fn simplify(mut object: Object) -> Value {
    let Value::Global { module, name } = &object.callable else {
        return Value::Object(Box::new(object));
    };
    match (module.as_str(), name.as_str()) {
        ("copyreg" | "copy_reg", "_reconstructor") if !object.args.is_empty() => {
            object.callable = object.args.remove(0);
            object.args.clear();
            Value::Object(Box::new(object))
        }
        ("builtins" | "__builtin__", "set" | "frozenset" | "list") => {
            let mut items = match object.args.pop() {
                Some(Value::List(v) | Value::Tuple(v) | Value::Set(v)) => v,
                _ => Vec::new(),
            };
            items.extend(object.items);
            if name == "list" {
                Value::List(items)
            } else {
                Value::Set(items)
            }
        }
        ("builtins" | "__builtin__", "dict") | ("collections", "OrderedDict") => {
            let mut entries = match object.args.pop() {
                Some(Value::Dict(d)) => d,
                Some(Value::List(pairs)) => pairs
                    .into_iter()
                    .filter_map(|p| match p {
                        Value::List(mut kv) | Value::Tuple(mut kv) if kv.len() == 2 => {
                            let v = kv.pop()?;
                            Some((kv.pop()?, v))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            entries.extend(object.entries);
            Value::Dict(entries)
        }
        ("_codecs", "encode") => match object.args.first() {
            Some(Value::Str(text)) => {
                // latin-1: each char is one byte.
                Value::Bytes(text.chars().map(|c| c as u32 as u8).collect())
            }
            _ => Value::Object(Box::new(object)),
        },
        _ => Value::Object(Box::new(object)),
    }
}
