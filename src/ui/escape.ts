const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Text made safe for HTML and SVG element content and quoted attribute values: the five
 * characters that could end a text node or an attribute are replaced by entities. Control
 * characters (which HTML forbids) become U+FFFD so a hostile name cannot smuggle them in.
 */
export function escapeHtml(text: string): string {
  let out = '';
  for (const ch of text.replace(/[&<>"']/g, (c) => ENTITIES[c] as string)) {
    const code = ch.charCodeAt(0);
    const control = (code < 0x20 && ch !== '\t' && ch !== '\n' && ch !== '\r') || code === 0x7f;
    out += control ? '\ufffd' : ch;
  }
  return out;
}
