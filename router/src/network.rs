//! Number → network: E.164 normalisation, the MCC/MNC prefix registry (longest prefix
//! wins) and the number-portability overrides that beat it.
//!
//! The registry is loaded from CSV files (`deploy/mccmnc/countries.csv` and one file of
//! prefixes per country, shipped with smsgw and embedded as the default). Lookups walk a
//! digit trie (at most 15 steps, no allocation) after one O(1) probe of the portability
//! table, a hash map keyed by the numeric MSISDN.

use std::{collections::HashMap, fmt, hash::BuildHasher, path::Path, sync::Arc};

use foldhash::fast::FixedState;

/// The shipped tables, used when no file is configured.
pub const SHIPPED_COUNTRIES: &str = include_str!("../../deploy/mccmnc/countries.csv");
pub const SHIPPED_PREFIXES: &[&str] = &[include_str!("../../deploy/mccmnc/uz.csv")];

/// E.164 numbers have at most 15 digits.
const MAX_DIGITS: usize = 15;
const NONE: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{file}:{line}: {why}")]
    Parse {
        file: String,
        line: usize,
        why: String,
    },
    #[error("cannot read {file}: {error}")]
    Io { file: String, error: std::io::Error },
}

/// A mobile network: what a prefix or a ported number resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub mcc: u16,
    pub mnc: u16,
    pub operator: Arc<str>,
    /// ISO 3166-1 alpha-2.
    pub country: Arc<str>,
    pub region: Arc<str>,
}

impl Network {
    pub fn code(&self) -> (u16, u16) {
        (self.mcc, self.mnc)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{:02} {} ({})",
            self.mcc, self.mnc, self.operator, self.country
        )
    }
}

/// Dialling rules of one country, for national numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    pub iso: Arc<str>,
    pub calling_code: String,
    /// "" when the country has none.
    pub trunk_prefix: String,
    /// Digits of a national significant number; 0 when it varies.
    pub national_length: usize,
}

/// An E.164 number as digits (country code first), without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E164 {
    digits: [u8; MAX_DIGITS],
    len: u8,
}

impl E164 {
    fn from_digits(d: &[u8]) -> Option<Self> {
        if d.is_empty() || d.len() > MAX_DIGITS || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [0u8; MAX_DIGITS];
        digits[..d.len()].copy_from_slice(d);
        Some(Self {
            digits,
            len: d.len() as u8,
        })
    }

    /// The ASCII digits.
    pub fn digits(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or("")
    }

    /// The number as an integer (15 digits fit in 50 bits): the portability key.
    pub fn value(&self) -> u64 {
        self.digits()
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d.wrapping_sub(b'0')))
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.as_str())
    }
}

/// Normalises a destination to E.164 digits: `+998…` and `00998…` are international; a
/// national number of `country` (with its trunk prefix, or of its exact national length)
/// gets the country code; anything else is taken as international digits already. Spaces,
/// dashes, dots and parentheses are ignored; anything else that is not a digit fails.
pub fn normalize(addr: &str, country: Option<&Country>) -> Option<E164> {
    let mut buf = [0u8; 24];
    let mut n = 0;
    let mut plus = false;
    for (i, b) in addr.bytes().enumerate() {
        match b {
            b'+' if n == 0 && !plus && i < 2 => plus = true,
            b' ' | b'-' | b'.' | b'(' | b')' | b'\t' => {}
            b'0'..=b'9' if n < buf.len() => {
                buf[n] = b;
                n += 1;
            }
            _ => return None,
        }
    }
    let d = &buf[..n];
    if plus {
        return E164::from_digits(d);
    }
    if let Some(rest) = d.strip_prefix(b"00") {
        return E164::from_digits(rest);
    }
    if let Some(c) = country {
        let national = if !c.trunk_prefix.is_empty()
            && let Some(rest) = d.strip_prefix(c.trunk_prefix.as_bytes())
            && (c.national_length == 0 || rest.len() == c.national_length)
        {
            Some(rest)
        } else if c.national_length != 0 && d.len() == c.national_length {
            Some(d)
        } else {
            None
        };
        if let Some(rest) = national {
            let cc = c.calling_code.as_bytes();
            let mut full = [0u8; 24];
            if cc.len() + rest.len() > full.len() {
                return None;
            }
            full[..cc.len()].copy_from_slice(cc);
            full[cc.len()..cc.len() + rest.len()].copy_from_slice(rest);
            return E164::from_digits(&full[..cc.len() + rest.len()]);
        }
    }
    E164::from_digits(d)
}

#[derive(Clone, Copy)]
struct Node {
    next: [u32; 10],
    network: u32,
}

impl Node {
    const EMPTY: Node = Node {
        next: [NONE; 10],
        network: NONE,
    };
}

/// The MSISDN → network overrides (ported numbers), O(1) per lookup.
pub type PortabilityMap = HashMap<u64, u16, FixedState>;

/// Where a number's network came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Portability,
    Prefix { len: usize },
}

/// A resolved destination.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub number: E164,
    pub network: &'a Network,
    pub source: Source,
}

/// Prefix registry plus portability overrides; read-only once built.
#[derive(Clone)]
pub struct Registry {
    networks: Vec<Network>,
    by_code: HashMap<(u16, u16), u16>,
    countries: HashMap<Arc<str>, Country>,
    nodes: Vec<Node>,
    ported: PortabilityMap,
    default_country: Option<Country>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("networks", &self.networks.len())
            .field("prefix_nodes", &self.nodes.len())
            .field("ported", &self.ported.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            networks: Vec::new(),
            by_code: HashMap::new(),
            countries: HashMap::new(),
            nodes: vec![Node::EMPTY],
            ported: PortabilityMap::with_hasher(FixedState::default()),
            default_country: None,
        }
    }
}

/// Rows of a CSV text: comment (`#`) and blank lines skipped, the header row (first
/// field not starting with a digit or the given header word) skipped.
fn rows<'a>(text: &'a str, header: &'a str) -> impl Iterator<Item = (usize, Vec<&'a str>)> + 'a {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i, l.split(',').map(str::trim).collect::<Vec<_>>()))
        .filter(move |(_, f)| f.first() != Some(&header))
}

fn read(path: &Path) -> Result<String, NetworkError> {
    std::fs::read_to_string(path).map_err(|error| NetworkError::Io {
        file: path.display().to_string(),
        error,
    })
}

impl Registry {
    /// The tables that ship with smsgw.
    pub fn shipped() -> Result<Self, NetworkError> {
        let mut r = Self::default();
        r.add_countries("countries.csv", SHIPPED_COUNTRIES)?;
        for (i, text) in SHIPPED_PREFIXES.iter().enumerate() {
            r.add_prefixes(&format!("shipped prefixes #{i}"), text)?;
        }
        Ok(r)
    }

    /// Countries and prefixes from files (each file of prefixes adds to the table).
    pub fn from_files(
        countries: &Path,
        prefixes: &[impl AsRef<Path>],
    ) -> Result<Self, NetworkError> {
        let mut r = Self::default();
        r.add_countries(&countries.display().to_string(), &read(countries)?)?;
        for p in prefixes {
            let p = p.as_ref();
            r.add_prefixes(&p.display().to_string(), &read(p)?)?;
        }
        Ok(r)
    }

    /// `iso,calling_code,trunk_prefix,national_length[,name]` per line.
    pub fn add_countries(&mut self, file: &str, text: &str) -> Result<(), NetworkError> {
        for (line, f) in rows(text, "iso") {
            let bad = |why: &str| NetworkError::Parse {
                file: file.to_owned(),
                line,
                why: why.to_owned(),
            };
            if f.len() < 4 {
                return Err(bad(
                    "expected iso,calling_code,trunk_prefix,national_length",
                ));
            }
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            if f[1].is_empty() || !digits(f[1]) || !digits(f[2]) {
                return Err(bad("calling_code and trunk_prefix must be digits"));
            }
            let national_length = f[3]
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_DIGITS)
                .ok_or_else(|| bad("national_length must be a number of digits"))?;
            let iso: Arc<str> = Arc::from(f[0].to_ascii_uppercase());
            self.countries.insert(
                iso.clone(),
                Country {
                    iso,
                    calling_code: f[1].to_owned(),
                    trunk_prefix: f[2].to_owned(),
                    national_length,
                },
            );
        }
        Ok(())
    }

    /// `prefix,mcc,mnc,operator,country,region` per line.
    pub fn add_prefixes(&mut self, file: &str, text: &str) -> Result<(), NetworkError> {
        for (line, f) in rows(text, "prefix") {
            let bad = |why: String| NetworkError::Parse {
                file: file.to_owned(),
                line,
                why,
            };
            if f.len() < 5 {
                return Err(bad(
                    "expected prefix,mcc,mnc,operator,country[,region]".into()
                ));
            }
            let prefix = f[0].strip_prefix('+').unwrap_or(f[0]);
            if prefix.is_empty()
                || prefix.len() > MAX_DIGITS
                || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad(format!("prefix {:?} must be 1 to 15 digits", f[0])));
            }
            let code = |s: &str| s.parse::<u16>().ok().filter(|v| *v <= 999);
            let (Some(mcc), Some(mnc)) = (code(f[1]), code(f[2])) else {
                return Err(bad("mcc and mnc must be numbers up to 999".into()));
            };
            let network = Network {
                mcc,
                mnc,
                operator: Arc::from(f[3]),
                country: Arc::from(f[4].to_ascii_uppercase()),
                region: Arc::from(f.get(5).copied().unwrap_or("")),
            };
            let index = self.intern(network).map_err(bad)?;
            self.insert_prefix(prefix.as_bytes(), index);
        }
        Ok(())
    }

    fn intern(&mut self, network: Network) -> Result<u16, String> {
        if let Some(i) = self.networks.iter().position(|n| *n == network) {
            return Ok(i as u16);
        }
        let i = u16::try_from(self.networks.len()).map_err(|_| "too many networks".to_owned())?;
        self.by_code.entry(network.code()).or_insert(i);
        self.networks.push(network);
        Ok(i)
    }

    fn insert_prefix(&mut self, prefix: &[u8], network: u16) {
        let mut at = 0usize;
        for d in prefix {
            let slot = usize::from(d - b'0');
            let next = self.nodes[at].next[slot];
            at = if next == NONE {
                self.nodes.push(Node::EMPTY);
                let new = (self.nodes.len() - 1) as u32;
                self.nodes[at].next[slot] = new;
                new as usize
            } else {
                next as usize
            };
        }
        self.nodes[at].network = u32::from(network);
    }

    /// National numbers without a country code are read as this country's.
    pub fn set_default_country(&mut self, iso: &str) -> Result<(), NetworkError> {
        let c = self
            .countries
            .get(iso.to_ascii_uppercase().as_str())
            .cloned()
            .ok_or_else(|| NetworkError::Parse {
                file: "[lcr] default_country".into(),
                line: 0,
                why: format!("unknown country {iso}"),
            })?;
        self.default_country = Some(c);
        Ok(())
    }

    pub fn country(&self, iso: &str) -> Option<&Country> {
        self.countries.get(iso)
    }

    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// The first network registered with this MCC/MNC.
    pub fn by_code(&self, mcc: u16, mnc: u16) -> Option<&Network> {
        self.by_code
            .get(&(mcc, mnc))
            .and_then(|i| self.networks.get(usize::from(*i)))
    }

    /// Add or replace one ported number. The network is found by MCC/MNC (added with an
    /// empty operator name when the prefix table does not know it).
    pub fn port(&mut self, msisdn: u64, mcc: u16, mnc: u16) -> Result<(), NetworkError> {
        let index = match self.by_code.get(&(mcc, mnc)) {
            Some(i) => *i,
            None => self
                .intern(Network {
                    mcc,
                    mnc,
                    operator: Arc::from(""),
                    country: Arc::from(""),
                    region: Arc::from(""),
                })
                .map_err(|why| NetworkError::Parse {
                    file: "portability".into(),
                    line: 0,
                    why,
                })?,
        };
        self.ported.insert(msisdn, index);
        Ok(())
    }

    /// Reserve room for `n` ported numbers (loading millions at once).
    pub fn reserve_ported(&mut self, n: usize) {
        self.ported.reserve(n);
    }

    pub fn ported(&self) -> usize {
        self.ported.len()
    }

    /// `msisdn,mcc,mnc` per line (E.164 digits, `+` allowed).
    pub fn add_portability(&mut self, file: &str, text: &str) -> Result<(), NetworkError> {
        for (line, f) in rows(text, "msisdn") {
            let bad = |why: &str| NetworkError::Parse {
                file: file.to_owned(),
                line,
                why: why.to_owned(),
            };
            if f.len() < 3 {
                return Err(bad("expected msisdn,mcc,mnc"));
            }
            let number = normalize(f[0], None).ok_or_else(|| bad("msisdn must be E.164"))?;
            let (Ok(mcc), Ok(mnc)) = (f[1].parse::<u16>(), f[2].parse::<u16>()) else {
                return Err(bad("mcc and mnc must be numbers"));
            };
            self.port(number.value(), mcc, mnc)?;
        }
        Ok(())
    }

    pub fn load_portability(&mut self, path: &Path) -> Result<(), NetworkError> {
        let text = read(path)?;
        self.add_portability(&path.display().to_string(), &text)
    }

    /// The network of the longest registered prefix of `number`.
    pub fn longest_prefix(&self, number: &E164) -> Option<(&Network, usize)> {
        let mut at = 0usize;
        let mut best = None;
        for (i, d) in number.digits().iter().enumerate() {
            let next = self.nodes[at].next[usize::from(d.wrapping_sub(b'0')).min(9)];
            if next == NONE {
                break;
            }
            at = next as usize;
            let n = self.nodes[at].network;
            if n != NONE {
                best = Some((n, i + 1));
            }
        }
        best.and_then(|(n, len)| self.networks.get(n as usize).map(|net| (net, len)))
    }

    /// Portability first, then the longest prefix.
    pub fn resolve(&self, addr: &str) -> Option<Resolved<'_>> {
        let number = normalize(addr, self.default_country.as_ref())?;
        if !self.ported.is_empty()
            && let Some(i) = self.ported.get(&number.value())
            && let Some(network) = self.networks.get(usize::from(*i))
        {
            return Some(Resolved {
                number,
                network,
                source: Source::Portability,
            });
        }
        let (network, len) = self.longest_prefix(&number)?;
        Some(Resolved {
            number,
            network,
            source: Source::Prefix { len },
        })
    }

    /// Bytes the portability table holds (its buckets and control bytes).
    pub fn portability_bytes(&self) -> usize {
        let buckets = self.ported.capacity().next_power_of_two().max(1);
        // hashbrown keeps 1/8 spare: capacity() is 7/8 of the buckets.
        let buckets = if buckets * 7 / 8 < self.ported.capacity() {
            buckets * 2
        } else {
            buckets
        };
        buckets * (std::mem::size_of::<(u64, u16)>() + 1)
    }

    /// The hasher, for benches that build their own maps the same way.
    pub fn hasher() -> impl BuildHasher {
        FixedState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uz() -> Registry {
        let mut r = Registry::shipped().expect("shipped tables parse");
        r.set_default_country("UZ").expect("UZ is shipped");
        r
    }

    #[test]
    fn normalisation_to_e164() {
        let r = uz();
        let uz = r.country("UZ").cloned();
        let gb = r.country("GB").cloned();
        let n = |a: &str, c: &Option<Country>| normalize(a, c.as_ref()).map(|e| e.to_string());
        assert_eq!(
            n("+998 90 123-45-67", &uz).as_deref(),
            Some("+998901234567")
        );
        assert_eq!(n("00998901234567", &uz).as_deref(), Some("+998901234567"));
        assert_eq!(n("998901234567", &uz).as_deref(), Some("+998901234567"));
        // A national number of the default country (no trunk prefix in Uzbekistan).
        assert_eq!(n("901234567", &uz).as_deref(), Some("+998901234567"));
        // A trunk prefix replaced by the country code.
        assert_eq!(n("07700 900123", &gb).as_deref(), Some("+447700900123"));
        assert_eq!(n("(0)7700900123", &gb).as_deref(), Some("+447700900123"));
        assert_eq!(n("+447700900123", &uz).as_deref(), Some("+447700900123"));
        for bad in [
            "",
            "+",
            "99890abc",
            "+1234567890123456",
            "++998",
            "9989012345678901",
        ] {
            assert_eq!(n(bad, &uz), None, "{bad}");
        }
        assert_eq!(
            normalize("+998901234567", None).map(|e| e.value()),
            Some(998_901_234_567)
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let mut r = uz();
        r.add_prefixes(
            "t",
            "99890,434,4,Beeline,UZ,\n9989012,434,5,Ucell-block,UZ,Tashkent\n",
        )
        .expect("parses");
        let op = |a: &str| {
            r.resolve(a)
                .map(|x| (x.network.operator.to_string(), x.source))
        };
        assert_eq!(
            op("+998901234567"),
            Some(("Ucell-block".into(), Source::Prefix { len: 7 }))
        );
        assert_eq!(
            op("+998901334567"),
            Some(("Beeline".into(), Source::Prefix { len: 5 }))
        );
        let code = |a: &str| r.resolve(a).map(|x| x.network.code());
        assert_eq!(code("998911234567"), Some((434, 4)));
        assert_eq!(code("998931234567"), Some((434, 5)));
        assert_eq!(code("998941234567"), Some((434, 5)));
        assert_eq!(code("998951234567"), Some((434, 8)));
        assert_eq!(code("998991234567"), Some((434, 8)));
        assert_eq!(code("998971234567"), Some((434, 7)));
        assert_eq!(code("998881234567"), Some((434, 7)));
        assert_eq!(code("998331234567"), Some((434, 7)));
        assert_eq!(code("971234567"), Some((434, 7)));
        assert_eq!(code("+998711234567"), None, "a Tashkent landline");
        assert_eq!(code("+255700000001"), None);
    }

    #[test]
    fn portability_overrides_the_prefix() {
        let mut r = uz();
        r.add_portability(
            "p",
            "msisdn,mcc,mnc\n+998901234567,434,5\n998931111111,434,99\n",
        )
        .expect("parses");
        let hit = r.resolve("998901234567").expect("resolves");
        assert_eq!(hit.network.code(), (434, 5));
        assert_eq!(hit.network.operator.as_ref(), "Ucell");
        assert_eq!(hit.source, Source::Portability);
        // Unknown to the prefix table: kept with its code.
        assert_eq!(
            r.resolve("+998931111111").map(|x| x.network.code()),
            Some((434, 99))
        );
        // A neighbour is not ported.
        assert_eq!(
            r.resolve("998901234568").map(|x| x.source),
            Some(Source::Prefix { len: 5 })
        );
        assert_eq!(r.ported(), 2);
        assert!(r.portability_bytes() >= 2 * 17);
    }

    #[test]
    fn bad_rows_name_their_file_and_line() {
        let mut r = Registry::default();
        let e = r
            .add_prefixes("x.csv", "prefix,mcc,mnc,operator,country\n99a,434,4,B,UZ\n")
            .expect_err("bad prefix");
        assert!(e.to_string().starts_with("x.csv:2:"), "{e}");
        assert!(r.add_prefixes("x.csv", "998,434\n").is_err());
        assert!(r.add_prefixes("x.csv", "998,4340,1,B,UZ\n").is_err());
        assert!(r.add_countries("c.csv", "UZ,99a,,9\n").is_err());
        assert!(r.add_portability("p.csv", "abc,434,4\n").is_err());
        assert!(r.set_default_country("XX").is_err());
    }
}
