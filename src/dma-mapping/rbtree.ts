/**
 * A small intrusive red-black tree ordered by a numeric `key`, with parent pointers so that
 * in-order neighbours (`prev`/`next`) cost O(1) amortised, as the kernel's rb_prev/rb_next do.
 * The IOVA allocator embeds its range nodes in it (key = first page frame of the range).
 *
 * Nodes are owned by the caller: insert() links a node, erase() unlinks it; the tree never
 * allocates. Keys must be unique; a caller may change a node's key in place only when the new
 * key keeps the node between its neighbours (reserve_iova's downward extension does that).
 */

export class RbNode {
  key: number;
  left: this | null = null;
  right: this | null = null;
  parent: this | null = null;
  red = true;

  constructor(key: number) {
    this.key = key;
  }
}

export class RbTree<N extends RbNode> {
  root: N | null = null;
  size = 0;

  /** Smallest node, or null when empty. */
  first(): N | null {
    let n = this.root;
    if (n === null) return null;
    while (n.left !== null) n = n.left;
    return n;
  }

  /** Largest node, or null when empty. */
  last(): N | null {
    let n = this.root;
    if (n === null) return null;
    while (n.right !== null) n = n.right;
    return n;
  }

  /** In-order successor. */
  next(n: N): N | null {
    if (n.right !== null) {
      let m = n.right;
      while (m.left !== null) m = m.left;
      return m;
    }
    let child = n;
    let p = n.parent;
    while (p !== null && p.right === child) {
      child = p;
      p = p.parent;
    }
    return p;
  }

  /** In-order predecessor. */
  prev(n: N): N | null {
    if (n.left !== null) {
      let m = n.left;
      while (m.right !== null) m = m.right;
      return m;
    }
    let child = n;
    let p = n.parent;
    while (p !== null && p.left === child) {
      child = p;
      p = p.parent;
    }
    return p;
  }

  /** Node with the smallest key >= k, or null. */
  ceiling(k: number): N | null {
    let n = this.root;
    let best: N | null = null;
    while (n !== null) {
      if (n.key >= k) {
        best = n;
        n = n.left;
      } else {
        n = n.right;
      }
    }
    return best;
  }

  /** Node with the largest key <= k, or null. */
  floor(k: number): N | null {
    let n = this.root;
    let best: N | null = null;
    while (n !== null) {
      if (n.key <= k) {
        best = n;
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return best;
  }

  /** Links `node` (fresh: no children, no parent). Returns false, linking nothing, on a duplicate key. */
  insert(node: N): boolean {
    let parent: N | null = null;
    let n = this.root;
    let goLeft = false;
    while (n !== null) {
      parent = n;
      if (node.key < n.key) {
        goLeft = true;
        n = n.left;
      } else if (node.key > n.key) {
        goLeft = false;
        n = n.right;
      } else {
        return false;
      }
    }
    node.parent = parent;
    node.left = null;
    node.right = null;
    node.red = true;
    if (parent === null) this.root = node;
    else if (goLeft) parent.left = node;
    else parent.right = node;
    this.size++;
    this.insertFixup(node);
    return true;
  }

  /** Unlinks `node`, which must be in this tree. */
  erase(z: N): void {
    // Classic delete: y is the node physically removed (z itself or z's successor),
    // x the child that moves into y's place (maybe null, so its parent is tracked apart).
    let y = z;
    let yWasRed = y.red;
    let x: N | null;
    let xParent: N | null;
    if (z.left === null) {
      x = z.right;
      xParent = z.parent;
      this.transplant(z, z.right);
    } else if (z.right === null) {
      x = z.left;
      xParent = z.parent;
      this.transplant(z, z.left);
    } else {
      y = z.right;
      while (y.left !== null) y = y.left;
      yWasRed = y.red;
      x = y.right;
      if (y.parent === z) {
        xParent = y;
      } else {
        xParent = y.parent;
        this.transplant(y, y.right);
        y.right = z.right;
        y.right!.parent = y;
      }
      this.transplant(z, y);
      y.left = z.left;
      y.left!.parent = y;
      y.red = z.red;
    }
    z.left = z.right = z.parent = null;
    this.size--;
    if (!yWasRed) this.eraseFixup(x, xParent);
  }

  /** Checks the red-black invariants and key order; returns the black height. For tests. */
  validate(): number {
    const walk = (n: N | null, lo: number, hi: number): number => {
      if (n === null) return 1;
      if (!(n.key > lo && n.key < hi)) throw new Error(`rbtree: key ${n.key} out of order`);
      if (n.left !== null && n.left.parent !== n) throw new Error('rbtree: bad parent link');
      if (n.right !== null && n.right.parent !== n) throw new Error('rbtree: bad parent link');
      if (n.red && ((n.left?.red ?? false) || (n.right?.red ?? false))) {
        throw new Error('rbtree: red node with red child');
      }
      const l = walk(n.left, lo, n.key);
      const r = walk(n.right, n.key, hi);
      if (l !== r) throw new Error('rbtree: unequal black heights');
      return l + (n.red ? 0 : 1);
    };
    if (this.root !== null && (this.root.red || this.root.parent !== null)) {
      throw new Error('rbtree: bad root');
    }
    return walk(this.root, -Infinity, Infinity);
  }

  private transplant(u: N, v: N | null): void {
    const p = u.parent;
    if (p === null) this.root = v;
    else if (p.left === u) p.left = v;
    else p.right = v;
    if (v !== null) v.parent = p;
  }

  private rotateLeft(x: N): void {
    const y = x.right!;
    x.right = y.left;
    if (y.left !== null) y.left.parent = x;
    this.transplant(x, y);
    y.left = x;
    x.parent = y;
  }

  private rotateRight(x: N): void {
    const y = x.left!;
    x.left = y.right;
    if (y.right !== null) y.right.parent = x;
    this.transplant(x, y);
    y.right = x;
    x.parent = y;
  }

  private insertFixup(z: N): void {
    while (z.parent !== null && z.parent.red) {
      let p = z.parent;
      const g = p.parent!; // a red node is never the root, so it has a parent
      if (p === g.left) {
        const u = g.right;
        if (u !== null && u.red) {
          p.red = false;
          u.red = false;
          g.red = true;
          z = g;
          continue;
        }
        if (z === p.right) {
          this.rotateLeft(p);
          z = p;
          p = z.parent!;
        }
        p.red = false;
        g.red = true;
        this.rotateRight(g);
      } else {
        const u = g.left;
        if (u !== null && u.red) {
          p.red = false;
          u.red = false;
          g.red = true;
          z = g;
          continue;
        }
        if (z === p.left) {
          this.rotateRight(p);
          z = p;
          p = z.parent!;
        }
        p.red = false;
        g.red = true;
        this.rotateLeft(g);
      }
    }
    this.root!.red = false;
  }

  private eraseFixup(x: N | null, parent: N | null): void {
    // x carries an extra black; push it up or resolve it with rotations.
    while (x !== this.root && (x === null || !x.red)) {
      const p = parent!;
      if (x === p.left) {
        let w = p.right!; // the sibling exists: p's right subtree has black height >= 1
        if (w.red) {
          w.red = false;
          p.red = true;
          this.rotateLeft(p);
          w = p.right!;
        }
        if ((w.left === null || !w.left.red) && (w.right === null || !w.right.red)) {
          w.red = true;
          x = p;
          parent = p.parent;
        } else {
          if (w.right === null || !w.right.red) {
            w.left!.red = false;
            w.red = true;
            this.rotateRight(w);
            w = p.right!;
          }
          w.red = p.red;
          p.red = false;
          if (w.right !== null) w.right.red = false;
          this.rotateLeft(p);
          x = this.root;
          parent = null;
        }
      } else {
        let w = p.left!;
        if (w.red) {
          w.red = false;
          p.red = true;
          this.rotateRight(p);
          w = p.left!;
        }
        if ((w.left === null || !w.left.red) && (w.right === null || !w.right.red)) {
          w.red = true;
          x = p;
          parent = p.parent;
        } else {
          if (w.left === null || !w.left.red) {
            w.right!.red = false;
            w.red = true;
            this.rotateLeft(w);
            w = p.left!;
          }
          w.red = p.red;
          p.red = false;
          if (w.left !== null) w.left.red = false;
          this.rotateRight(p);
          x = this.root;
          parent = null;
        }
      }
    }
    if (x !== null) x.red = false;
  }
}
