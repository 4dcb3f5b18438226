//! Chat templates (`tokenizer.chat_template`, Jinja) rendered with minijinja.
//!
//! A template inside a downloaded GGUF is untrusted code. minijinja has no file or
//! network access, and we add a fuel limit so a template that loops forever (or close
//! to it) fails with an error instead of hanging the program. The environment mirrors
//! what Hugging Face's `apply_chat_template` gives templates: `trim_blocks`,
//! `lstrip_blocks`, Python string methods, `raise_exception`, `tojson`.

use crate::error::{Error, Result};
use minijinja::{context, Environment, ErrorKind};
use serde::{Deserialize, Serialize};

/// Instructions a render may execute; real templates use a few thousand per message.
const FUEL: u64 = 5_000_000;
/// A rendered prompt longer than this is certainly a runaway template, whatever the
/// model's context.
const MAX_RENDERED_BYTES: usize = 16 << 20;
/// Fixed so that prompts, and with them datasets, do not change with the calendar.
const TEMPLATE_DATE: &str = "26 Jul 2024";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bytes", &self.source.len())
            .finish()
    }
}

impl ChatTemplate {
    /// Compile a template; `origin` names where it came from for error messages.
    pub fn new(source: &str, origin: &str) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |_fmt: String| TEMPLATE_DATE.to_string());
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::ChatTemplate(format!("{origin} does not compile: {e:#}")))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`; with `add_generation_prompt` it ends where the
    /// assistant's reply begins. A render longer than `max_bytes` (what the model's
    /// context can hold; at most 16 MiB) stops there with an error.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
        max_bytes: usize,
    ) -> Result<String> {
        let max_bytes = max_bytes.min(MAX_RENDERED_BYTES);
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        // Rendered into a bounded buffer: a template that grows its output without end
        // stops at the bound instead of filling memory first.
        let mut buf = Bounded {
            buf: Vec::new(),
            max: max_bytes,
        };
        let rendered = tmpl.render_captured_to(
            context! {
                messages => messages_value(messages),
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            },
            &mut buf,
        );
        if let Err(e) = rendered {
            if buf.buf.len() > max_bytes {
                return Err(Error::ChatTemplate(format!(
                    "the rendered prompt grew past {max_bytes} bytes, more than the model's context can hold\nhint: shorten the messages, or pass a working template with `--chat-template FILE`"
                )));
            }
            let hint = if e.kind() == ErrorKind::OutOfFuel {
                "\nhint: the template ran too long (a loop that never ends?); pass a working one with `--chat-template FILE`"
            } else {
                "\nhint: pass a working template with `--chat-template FILE`"
            };
            return Err(Error::ChatTemplate(format!(
                "rendering failed: {e:#}{hint}"
            )));
        }
        let out = String::from_utf8(buf.buf)
            .map_err(|_| Error::ChatTemplate("the template produced invalid UTF-8".into()))?;
        Ok(out)
    }
}

/// A writer that refuses to grow past `max` bytes (the refusal stops the render).
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.max {
            self.buf.resize(self.max + 1, 0);
            return Err(std::io::Error::other("rendered prompt over the bound"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Messages as template values: a list of `{role, content}` maps.
fn messages_value(messages: &[Message]) -> minijinja::Value {
    minijinja::Value::from(
        messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect::<Vec<_>>(),
    )
}
