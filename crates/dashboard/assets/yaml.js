// JSON → YAML, printed the way kubectl prints objects (sequences at their key's indentation).
// Strings are left plain only when YAML 1.1 and 1.2 both read them back as the same string;
// anything that could be a number, boolean, null, timestamp or indicator is double-quoted (a
// JSON string literal is a valid YAML double-quoted scalar). Multi-line text is a literal block.

const KEYWORDS = /^(true|false|yes|no|y|n|on|off|null|~|\.inf|-\.inf|\.nan)$/i;

function plainSafe(s) {
  if (s === '' || KEYWORDS.test(s)) return false;
  if (/^[-+]?(\d|\.\d)/.test(s)) return false; // numbers, versions, IPs, timestamps
  if (/^[-?:,[\]{}#&*!|>'"%@`\s]/.test(s) || /\s$/.test(s)) return false;
  if (/: |:$| #|[\t\n\r\u0000-\u001f\u007f-\u009f\ufeff]/.test(s)) return false;
  return true;
}

function scalar(v, indent) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  const s = String(v);
  if (plainSafe(s)) return s;
  // A literal block keeps multi-line text (scripts, certificates) readable; its first line must
  // not start with a space (that would need an indentation indicator) and no line may hold
  // characters a block cannot.
  if (s.includes('\n') && !/^[ \n]/.test(s) && !/[\r\t\u0000-\u0008\u000b-\u001f]/.test(s)) {
    const body = s.replace(/\n+$/, '');
    const trailing = s.length - body.length;
    const chomp = trailing === 0 ? '-' : trailing === 1 ? '' : '+';
    const content = (trailing > 1 ? s.slice(0, -1) : body).split('\n');
    return `|${chomp}\n${content.map((l) => (l ? indent + l : '')).join('\n')}`;
  }
  return JSON.stringify(s);
}

const isEmpty = (v) => (Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0);
const isCollection = (v) => v !== null && typeof v === 'object';

function mapping(obj, indent) {
  const out = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = `${indent}${scalar(k, indent)}:`;
    if (!isCollection(v)) out.push(`${key} ${scalar(v, `${indent}  `)}`);
    else if (isEmpty(v)) out.push(`${key} ${Array.isArray(v) ? '[]' : '{}'}`);
    else if (Array.isArray(v)) out.push(key, ...sequence(v, indent));
    else out.push(key, ...mapping(v, `${indent}  `));
  }
  return out;
}

function sequence(arr, indent) {
  const out = [];
  for (const v of arr) {
    if (!isCollection(v)) out.push(`${indent}- ${scalar(v, `${indent}  `)}`);
    else if (isEmpty(v)) out.push(`${indent}- ${Array.isArray(v) ? '[]' : '{}'}`);
    else if (Array.isArray(v)) out.push(`${indent}-`, ...sequence(v, `${indent}  `));
    else {
      // The mapping's first key shares the dash's line.
      const inner = mapping(v, `${indent}  `);
      inner[0] = `${indent}- ${inner[0].slice(indent.length + 2)}`;
      out.push(...inner);
    }
  }
  return out;
}

export function toYaml(value) {
  if (!isCollection(value)) return `${scalar(value, '')}\n`;
  if (isEmpty(value)) return Array.isArray(value) ? '[]\n' : '{}\n';
  return `${(Array.isArray(value) ? sequence(value, '') : mapping(value, '')).join('\n')}\n`;
}
