// MathJax 3, served by this site (assets/mathjax/, copied from the django-static-mathjax package by
// docs/hooks/course.py): no CDN, formulas typeset offline.
//
// Typeset exactly two kinds of element:
// - `.arithmatex`: what pymdownx.arithmatex makes of $...$ in Markdown pages and docstrings;
// - `.jp-RenderedMarkdown`: the Markdown cells of the lesson notebooks, where mkdocs-jupyter
//   leaves $...$ and $$...$$ as raw text.
// Everything else (navigation, code, cell outputs) is left alone, so a literal dollar sign in prose
// or code is never taken for math.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  startup: {
    elements: [".arithmatex", ".jp-RenderedMarkdown"],
  },
  svg: {
    fontCache: "global",
  },
};
