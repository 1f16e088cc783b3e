// The portal's code editor: CodeMirror 6 with Python, Bash and PowerShell highlighting.
// Bundled by build.mjs into ../smaweb/portal/static/vendor/sma-editor.js (window.SmaEditor).
import { EditorView, basicSetup } from "codemirror";
import { EditorState } from "@codemirror/state";
import { StreamLanguage } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { powerShell } from "@codemirror/legacy-modes/mode/powershell";

const languages = {
  python: () => python(),
  bash: () => StreamLanguage.define(shell),
  powershell: () => StreamLanguage.define(powerShell),
};

// CodeMirror writes its styles into a <style> element; the page's Content-Security-Policy
// admits it by the nonce the server put on <meta name="csp-nonce"> (read from the property:
// browsers hide a nonce attribute's value from the DOM)
function cspNonce() {
  const meta = document.querySelector('meta[name="csp-nonce"]');
  return meta ? meta.nonce : "";
}

// Replace a <textarea> by an editor that writes back into it, so the form posts as usual.
export function attach(textarea, type, readOnly = false) {
  const nonce = cspNonce();
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        basicSetup,
        (languages[type] || languages.python)(),
        EditorState.readOnly.of(readOnly),
        nonce ? EditorView.cspNonce.of(nonce) : [],
        EditorView.updateListener.of((update) => {
          if (update.docChanged) textarea.value = update.state.doc.toString();
        }),
      ],
    }),
  });
  textarea.style.display = "none";
  textarea.parentNode.insertBefore(view.dom, textarea);
  return view;
}
