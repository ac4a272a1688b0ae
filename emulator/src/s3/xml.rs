//! S3 XML: writing answers with careful escaping, and reading the two request bodies the
//! emulator accepts (CompleteMultipartUpload and DeleteObjects) into a small element tree with
//! `quick-xml`. Namespaces are ignored (S3 clients send `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"`).

use quick_xml::events::Event;
use quick_xml::Reader;

pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for element content (`&`, `<`, `>`, `"`, `'`).
pub fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// A whole document: declaration, `<root xmlns=…>`, the inner XML, `</root>`.
pub fn doc(root: &str, inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NS}\">{inner}</{root}>")
}

/// `<name>escaped text</name>`.
pub fn el(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", esc(text))
}

/// One element of a parsed request body.
#[derive(Debug, Default)]
pub struct Node {
    /// Local name (without a namespace prefix).
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into its root element; `None` if it is not well-formed.
pub fn parse(body: &[u8]) -> Option<Node> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let local = |raw: &[u8]| -> Option<String> {
        let name = std::str::from_utf8(raw).ok()?;
        Some(name.rsplit(':').next().unwrap_or(name).to_string())
    };
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if root.is_some() {
                    return None;
                }
                stack.push(Node {
                    name: local(e.name().as_ref())?,
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: local(e.name().as_ref())?,
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None if root.is_none() => root = Some(node),
                    None => return None,
                }
            }
            Event::End(e) => {
                let node = stack.pop()?;
                if local(e.name().as_ref())? != node.name {
                    return None;
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let s = t.decode().ok()?;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return None,
                }
            }
            Event::CData(c) => {
                let s = c.decode().ok()?;
                stack.last_mut()?.text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                let name = std::str::from_utf8(&r).ok()?;
                let s = quick_xml::escape::unescape(&format!("&{name};"))
                    .ok()?
                    .into_owned();
                stack.last_mut()?.text.push_str(&s);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return None;
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_body() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part>
  <Part><ETag>"def"</ETag><PartNumber>2</PartNumber></Part>
</CompleteMultipartUpload>"#;
        let root = parse(body).expect("parses");
        assert_eq!(root.name, "CompleteMultipartUpload");
        let parts: Vec<_> = root.children_named("Part").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].child_text("ETag"), Some("\"abc\""));
        assert_eq!(parts[1].child_text("PartNumber"), Some("2"));
        assert!(parse(b"<a><b></a>").is_none());
        assert!(parse(b"not xml").is_none());
        assert_eq!(esc("a&<\"'>"), "a&amp;&lt;&quot;&apos;&gt;");
    }
}
