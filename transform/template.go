package transform

import (
	"fmt"
	"maps"
	"slices"
	"text/template"
	"text/template/parse"
)

// templateRefs is what a parsed template reads from the row map.
type templateRefs struct {
	columns   map[string]bool // columns named statically
	dynamic   bool            // the map is used in a way that may read any column
	undefined []string        // named templates called but not defined
}

// analyzeTemplate walks tmpl's parse tree and collects the columns it reads:
// fields of dot at the top level ({{.title}}, {{if .a}}...), fields of $
// ({{$.title}}), and index calls on the row map with a string literal
// ({{index . "Body Text"}}). Any other use of the row map itself (printing
// it, ranging over it, passing it to a function, indexing it with a
// variable) makes the template dynamic: it may read every column.
func analyzeTemplate(tmpl *template.Template) templateRefs {
	w := &walker{
		tmpl:     tmpl,
		refs:     templateRefs{columns: map[string]bool{}},
		visiting: map[visitKey]bool{},
	}
	if tmpl.Tree != nil && tmpl.Root != nil {
		w.list(tmpl.Root, scope{dot: true, dollar: true, vars: map[string]bool{}})
	}
	slices.Sort(w.refs.undefined)
	w.refs.undefined = slices.Compact(w.refs.undefined)
	return w.refs
}

type visitKey struct {
	name string
	root bool
}

type walker struct {
	tmpl     *template.Template
	refs     templateRefs
	visiting map[visitKey]bool
}

// scope says which values in the current context are the row map: dot, $,
// and variables (by name, "$x" -> is the row map).
type scope struct {
	dot, dollar bool
	vars        map[string]bool
}

func (s scope) child(dot bool) scope {
	return scope{dot: dot, dollar: s.dollar, vars: maps.Clone(s.vars)}
}

func (w *walker) column(name string) { w.refs.columns[name] = true }
func (w *walker) dynamic()           { w.refs.dynamic = true }

func (w *walker) list(l *parse.ListNode, sc scope) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		w.node(n, sc)
	}
}

func (w *walker) node(n parse.Node, sc scope) {
	switch n := n.(type) {
	case *parse.ListNode:
		w.list(n, sc)
	case *parse.ActionNode:
		if w.pipe(n.Pipe, sc) && len(n.Pipe.Decl) == 0 {
			w.dynamic() // {{.}} prints the whole map
		}
	case *parse.IfNode:
		inner := sc.child(sc.dot)
		if w.pipe(n.Pipe, inner) {
			w.dynamic()
		}
		w.list(n.List, inner)
		w.list(n.ElseList, inner.child(sc.dot))
	case *parse.WithNode:
		inner := sc.child(sc.dot)
		root := w.pipe(n.Pipe, inner)
		w.list(n.List, inner.child(root))
		w.list(n.ElseList, inner.child(sc.dot))
	case *parse.RangeNode:
		inner := sc.child(sc.dot)
		if w.pipeValue(n.Pipe, inner) {
			w.dynamic() // ranging over the row map reads every column
		}
		for _, v := range n.Pipe.Decl {
			inner.vars[v.Ident[0]] = false
		}
		w.list(n.List, inner.child(false))
		w.list(n.ElseList, inner.child(sc.dot))
	case *parse.TemplateNode:
		root := false
		if n.Pipe != nil {
			root = w.pipe(n.Pipe, sc)
		}
		w.call(n.Name, root)
	}
}

// call walks the named template with dot and $ bound to the row map or not.
func (w *walker) call(name string, root bool) {
	t := w.tmpl.Lookup(name)
	if t == nil || t.Tree == nil {
		w.refs.undefined = append(w.refs.undefined, name)
		return
	}
	key := visitKey{name, root}
	if w.visiting[key] {
		return
	}
	w.visiting[key] = true
	w.list(t.Root, scope{dot: root, dollar: root, vars: map[string]bool{}})
}

// pipe analyses a pipeline, records its declarations in sc, and reports
// whether its value is the row map.
func (w *walker) pipe(p *parse.PipeNode, sc scope) bool {
	root := w.pipeValue(p, sc)
	for _, v := range p.Decl {
		name := v.Ident[0]
		if p.IsAssign {
			if was, ok := sc.vars[name]; ok && was != root {
				// The variable changes meaning at run time.
				w.dynamic()
			}
		}
		sc.vars[name] = root
	}
	return root
}

// pipeValue analyses a pipeline's commands and reports whether its value is
// the row map.
func (w *walker) pipeValue(p *parse.PipeNode, sc scope) bool {
	if p == nil {
		return false
	}
	root := false
	for i, cmd := range p.Cmds {
		if i > 0 && root {
			// The row map is passed on as the last argument of a function.
			w.dynamic()
		}
		root = w.command(cmd, sc)
	}
	return root
}

// command analyses one command and reports whether its value is the row map.
func (w *walker) command(c *parse.CommandNode, sc scope) bool {
	if len(c.Args) == 0 {
		return false
	}
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
		args := c.Args[1:]
		if id.Ident == "index" && len(args) >= 2 && w.operand(args[0], sc) {
			if s, ok := args[1].(*parse.StringNode); ok {
				w.column(s.Text)
			} else {
				w.operand(args[1], sc)
				w.dynamic()
			}
			for _, a := range args[2:] {
				w.argument(a, sc)
			}
			return false
		}
		for _, a := range args {
			w.argument(a, sc)
		}
		return false
	}
	if len(c.Args) == 1 {
		return w.operand(c.Args[0], sc)
	}
	// A method or field call with arguments.
	for _, a := range c.Args {
		w.argument(a, sc)
	}
	return false
}

// argument analyses a function argument: passing the row map itself to a
// function may read any column.
func (w *walker) argument(n parse.Node, sc scope) {
	if w.operand(n, sc) {
		w.dynamic()
	}
}

// operand analyses one operand, records the columns it reads, and reports
// whether its value is the row map.
func (w *walker) operand(n parse.Node, sc scope) bool {
	switch n := n.(type) {
	case *parse.DotNode:
		return sc.dot
	case *parse.FieldNode:
		if sc.dot {
			w.column(n.Ident[0])
		}
		return false
	case *parse.VariableNode:
		root := sc.vars[n.Ident[0]]
		if n.Ident[0] == "$" {
			root = sc.dollar
		}
		if len(n.Ident) > 1 {
			if root {
				w.column(n.Ident[1])
			}
			return false
		}
		return root
	case *parse.ChainNode:
		if w.operand(n.Node, sc) && len(n.Field) > 0 {
			w.column(n.Field[0])
		}
		return false
	case *parse.PipeNode:
		return w.pipe(n, sc.child(sc.dot))
	}
	return false
}

// parseTemplate parses a row template with missingkey=zero.
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	return t, nil
}
