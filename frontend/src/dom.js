// The dashboard's one way to find, build and mark elements (no framework).

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * A new element. Each prop is set as a property when the element has one (className,
 * textContent, value, checked…) and as an attribute otherwise (aria-*, and role where the
 * browser does not reflect it); `dataset` fills data-*, undefined values are skipped.
 * Children are appended; strings become text.
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Set or clear data-state: the styles key on whether it is present. */
export function setState(node, state) {
  if (state) node.dataset.state = state;
  else delete node.dataset.state;
}
