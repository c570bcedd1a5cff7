/**
 * Sandpool's Node agent: turning a cell of code into a script that runs like a notebook cell.
 *
 * - Top-level declarations live on in the global scope: `let`, `const` and `class` become `var`s,
 *   so a later cell sees them and may declare them again (as a notebook re-runs a cell).
 * - The value of a trailing expression statement is the cell's value.
 * - Top-level `await` (and `for await`) works: such a cell runs as an async function whose
 *   declarations are hoisted to the global scope and whose trailing expression is returned.
 * - `import x from 'm'` (and its other forms) becomes `await import('m')`.
 */

import { parse } from 'acorn';

const FUNCTION_TYPES = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);

/** Whether `node` awaits at the cell's top level (not inside a function it declares). */
function awaitsAtTopLevel(node) {
  if (!node || typeof node.type !== 'string' || FUNCTION_TYPES.has(node.type)) return false;
  if (node.type === 'AwaitExpression' || (node.type === 'ForOfStatement' && node.await)) return true;
  for (const key of Object.keys(node)) {
    const child = node[key];
    if (Array.isArray(child) ? child.some(awaitsAtTopLevel) : awaitsAtTopLevel(child)) return true;
  }
  return false;
}

/** The names a binding pattern declares. */
function boundNames(pattern) {
  switch (pattern.type) {
    case 'Identifier':
      return [pattern.name];
    case 'ObjectPattern':
      return pattern.properties.flatMap((p) => boundNames(p.type === 'RestElement' ? p.argument : p.value));
    case 'ArrayPattern':
      return pattern.elements.filter(Boolean).flatMap(boundNames);
    case 'RestElement':
      return boundNames(pattern.argument);
    case 'AssignmentPattern':
      return boundNames(pattern.left);
    default:
      return [];
  }
}

function parseCell(code) {
  const options = {
    ecmaVersion: 'latest',
    allowAwaitOutsideFunction: true,
    allowHashBang: true,
    locations: false,
  };
  try {
    return parse(code, { ...options, sourceType: 'script' });
  } catch (error) {
    // `import` declarations parse only as a module; anything else keeps the script's error.
    try {
      return parse(code, { ...options, sourceType: 'module' });
    } catch {
      throw error;
    }
  }
}

/** The statement an `import` declaration becomes: names bound from `await import(source)`. */
function importAsAwait(node, code) {
  const source = code.slice(node.source.start, node.source.end);
  const bindings = node.specifiers.map((s) => {
    if (s.type === 'ImportNamespaceSpecifier') return `${s.local.name} = __module`;
    if (s.type === 'ImportDefaultSpecifier') return `${s.local.name} = __module.default`;
    const imported = s.imported.type === 'Identifier' ? s.imported.name : s.imported.value;
    return `${s.local.name} = __module[${JSON.stringify(imported)}]`;
  });
  return `{ const __module = await import(${source}); ${bindings.map((b) => `${b};`).join(' ')} }`;
}

/**
 * Compiles a cell: `{ source, awaits, hasValue }`. Throws acorn's SyntaxError (with line and column)
 * for code that does not parse.
 */
export function compileCell(code) {
  const tree = parseCell(code);
  const body = tree.body;
  for (const node of body) {
    if (node.type.startsWith('Export')) {
      const error = new SyntaxError('a cell cannot export; assign to a variable instead');
      throw error;
    }
  }
  const hasImports = body.some((node) => node.type === 'ImportDeclaration');
  const awaits = hasImports || body.some(awaitsAtTopLevel);
  const last = body.at(-1);
  // A lone string literal is a directive to the parser, and a value to the user.
  const hasValue = last?.type === 'ExpressionStatement';

  const edits = [];
  const hoisted = new Set();
  const functions = [];
  for (const node of body) {
    if (node.type === 'VariableDeclaration') {
      const names = node.declarations.flatMap((d) => boundNames(d.id));
      names.forEach((name) => hoisted.add(name));
      if (!awaits) {
        edits.push({ start: node.start, end: node.start + node.kind.length, text: 'var' });
      } else {
        const assignments = node.declarations
          .filter((d) => d.init)
          .map((d) => `(${code.slice(d.id.start, d.id.end)} = ${code.slice(d.init.start, d.init.end)})`);
        edits.push({
          start: node.start,
          end: node.end,
          text: assignments.length ? `${assignments.join(', ')};` : ';',
        });
      }
    } else if (node.type === 'ClassDeclaration') {
      const name = node.id.name;
      hoisted.add(name);
      const text = code.slice(node.start, node.end);
      edits.push({
        start: node.start,
        end: node.end,
        text: awaits ? `${name} = ${text};` : `var ${name} = ${text};`,
      });
    } else if (node.type === 'FunctionDeclaration' && awaits) {
      // Hoisted inside the async function; published to the global scope before its body runs.
      hoisted.add(node.id.name);
      functions.push(node.id.name);
    } else if (node.type === 'ImportDeclaration') {
      node.specifiers.forEach((s) => hoisted.add(s.local.name));
      edits.push({ start: node.start, end: node.end, text: importAsAwait(node, code) });
    }
  }
  if (awaits && hasValue) {
    edits.push({
      start: last.start,
      end: last.end,
      text: `return (${code.slice(last.expression.start, last.expression.end)});`,
    });
  }
  let source = code;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    source = source.slice(0, edit.start) + edit.text + source.slice(edit.end);
  }
  if (awaits) {
    const declared = hoisted.size ? `var ${[...hoisted].join(', ')}; ` : '';
    const published = functions.map((name) => `globalThis[${JSON.stringify(name)}] = ${name}; `).join('');
    // The cell's code starts on the wrapper's first line, so line numbers in errors stay its own.
    source = `${declared}(async () => { ${published}${source}\n})()`;
  }
  return { source, awaits, hasValue };
}
