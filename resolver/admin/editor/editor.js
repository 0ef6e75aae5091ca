// Entry point of the dashboard's editor bundle (make vendor-editor builds
// ../ui/vendor/editor.js from it). It exposes one global, PVEditor, so app.js
// stays plain JavaScript without a build step of its own.
import { EditorView, basicSetup } from "codemirror";
import { EditorState } from "@codemirror/state";
import { yaml } from "@codemirror/lang-yaml";
import { setDiagnostics, lintGutter } from "@codemirror/lint";

// create mounts an editor in parent. onChange(text) runs after each edit.
//
// The editor lives in a shadow root: CodeMirror injects its styles, and in
// a document it would do so with a <style> element, which the dashboard's
// Content-Security-Policy (style-src 'self') refuses; in a shadow root it
// uses a constructed stylesheet (adoptedStyleSheets), which CSP allows.
export function create(parent, { doc = "", onChange } = {}) {
  const root = parent.attachShadow({ mode: "open" });
  const view = new EditorView({
    root,
    parent: root,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        EditorView.theme({
          "&": { minHeight: "360px", maxHeight: "70vh", fontSize: "13px" },
          ".cm-scroller": { overflow: "auto", fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" },
        }),
        yaml(),
        lintGutter(),
        EditorView.lineWrapping,
        EditorView.updateListener.of((u) => { if (u.docChanged && onChange) onChange(u.state.doc.toString()); }),
      ],
    }),
  });
  return {
    view,
    root,
    getValue: () => view.state.doc.toString(),
    setValue: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    focus: () => view.focus(),
    // setProblems marks each {line, column, message} (1-based; line 0 is
    // the whole file) in the text and the gutter.
    setProblems: (problems) => {
      const doc = view.state.doc;
      const diags = (problems || []).map((p) => {
        const ln = doc.line(Math.min(Math.max(p.line || 1, 1), doc.lines));
        const from = Math.min(ln.from + Math.max((p.column || 1) - 1, 0), ln.to);
        return { from, to: Math.max(ln.to, from), severity: "error", message: p.message };
      });
      view.dispatch(setDiagnostics(view.state, diags));
    },
  };
}
