//! HTML and SVG built so that every value is escaped: the report's only way to make
//! markup is [`html!`](crate::html), whose format string is a literal written here (the
//! trusted part) and whose every argument is escaped unless it is already [`Markup`].
//!
//! A value read from a dataset, a manifest or a flag can therefore never become markup,
//! whichever chart or caption it lands in: forgetting to escape is not possible, since
//! there is no unescaped way in. The format string may not name variables (`{x}`):
//! those would bypass the arguments, so `html!` refuses them at compile time.

use std::fmt;

/// Text that is safe to put in a page as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markup(String);

impl Markup {
    pub fn new() -> Markup {
        Markup(String::new())
    }

    pub fn push(&mut self, m: Markup) {
        self.0.push_str(&m.0);
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Markup written into the program itself (a stylesheet): a `'static` string is
    /// a literal of ours, never a value read at run time.
    pub fn from_static(s: &'static str) -> Markup {
        Markup(s.to_string())
    }

    /// For `html!` only: the format string is the macro's literal and every argument
    /// went through [`Escaped`].
    #[doc(hidden)]
    pub fn from_html_macro(s: String) -> Markup {
        Markup(s)
    }
}

/// Read as text (never the other way: a `str` does not become `Markup`).
impl std::ops::Deref for Markup {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Markup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a value goes into markup.
pub trait Escape {
    fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// `& < > " '` as entities: safe in text and in quoted attribute values.
fn write_escaped(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut rest = s;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        f.write_str(&rest[..at])?;
        f.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        })?;
        rest = &rest[at + 1..];
    }
    f.write_str(rest)
}

/// Escape `s` into a new string (for tests and plain `String` consumers).
pub fn escape(s: &str) -> String {
    struct E<'a>(&'a str);
    impl fmt::Display for E<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_escaped(self.0, f)
        }
    }
    E(s).to_string()
}

impl Escape for Markup {
    fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Escape for str {
    fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(self, f)
    }
}

impl Escape for String {
    fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(self, f)
    }
}

impl Escape for serde_json::Value {
    fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(&self.to_string(), f)
    }
}

impl<T: Escape + ?Sized> Escape for &T {
    fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).escape_into(f)
    }
}

/// Numbers need no escaping; their precision (`{:.1}`) is kept.
macro_rules! escape_numbers {
    ($($t:ty),*) => {$(
        impl Escape for $t {
            fn escape_into(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match f.precision() {
                    Some(p) => write!(f, "{:.*}", p, self),
                    None => write!(f, "{}", self),
                }
            }
        }
    )*};
}
escape_numbers!(f64, f32, usize, u64, u32, i64, i32);

/// An argument of `html!`, written escaped.
#[doc(hidden)]
pub struct Escaped<'a, T: ?Sized>(pub &'a T);

impl<T: Escape + ?Sized> fmt::Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.escape_into(f)
    }
}

/// Whether a format string takes its values only as arguments (`{}`, `{:.1}`), never by
/// naming a variable (`{x}`), which would go around the escaping.
#[doc(hidden)]
pub const fn positional_only(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            if i + 1 < b.len() && b[i + 1] == b'{' {
                i += 2;
                continue;
            }
            if !(i + 1 < b.len() && (b[i + 1] == b'}' || b[i + 1] == b':')) {
                return false;
            }
        }
        i += 1;
    }
    true
}

/// Markup from a literal format string and escaped arguments:
/// `html!("<td>{}</td>", name)`. Arguments that are [`Markup`] go in as they are.
#[macro_export]
macro_rules! html {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        const _: () = assert!(
            $crate::report::html::positional_only($fmt),
            "html!: pass values as arguments, not by naming variables in the format string, so that they are escaped"
        );
        $crate::report::html::Markup::from_html_macro(format!(
            $fmt $(, $crate::report::html::Escaped(&$arg))*
        ))
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_is_escaped_unless_it_is_markup() {
        let evil = "<script>alert(\"x\")</script>&'";
        let inner = crate::html!("<b>{}</b>", evil);
        assert_eq!(
            inner.as_str(),
            "<b>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</b>"
        );
        let outer = crate::html!("<p title=\"{}\">{} {:.2}</p>", evil, inner, 1.23456);
        assert!(!outer.as_str().contains("<script>"));
        assert!(outer.as_str().contains("<b>&lt;script"));
        assert!(outer.as_str().ends_with(" 1.23</p>"));
        let v = serde_json::json!({"prompt": "<script>"});
        assert_eq!(
            crate::html!("{}", v["prompt"]).as_str(),
            "&quot;&lt;script&gt;&quot;"
        );
        assert_eq!(escape("a<b"), "a&lt;b");
    }

    #[test]
    fn format_strings_may_not_name_variables() {
        assert!(positional_only("<x a=\"{}\">{:.1}{{literal}}</x>"));
        assert!(!positional_only("<x>{name}</x>"));
        assert!(!positional_only("<x>{0}</x>"));
        assert!(!positional_only("<x>{y:.1}</x>"));
    }
}
