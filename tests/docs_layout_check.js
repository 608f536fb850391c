// What a reader sees of a built page, checked in the browser after the page has loaded
// (tests/test_docs_site.py injects this file into a copy of each page). Every finding is a line
// of text; the list goes into the data-layout-problems attribute of <body>, which Chromium's
// --dump-dom returns. The kinds of defect, each once seen on the site:
//
// - hidden to the right: a code or output block wider than its box, so the end of its lines is
//   cut off or behind a sideways scroll (the training page's output stopped at "score 0."), or
//   cut off at the bottom: taller than its box;
// - broken mid-word: a line of code or output, or inline code, that wraps between two letters or
//   digits ("el / se", "torch.Tens / or" in lesson 4, "periodic_eval.p / y" in a table cell);
// - diagram wrapped: a text drawing (box-drawing characters) whose lines wrap, which scrambles it;
// - wider than its box: a picture, drawing or table that reaches past the article or past the
//   box that holds it, so its right part is hidden (a table scrolling sideways counts);
// - squashed table cell: a cell of figures (digits and their signs, no words) broken over more
//   than two lines because the table got less width than its columns need.
window.addEventListener("load", () => setTimeout(() => {
  const article = document.querySelector("article");
  const problems = [];
  const visible = (el) => el.offsetParent !== null;  // not in a closed <details> or hidden tab
  const firstLine = (el) => el.textContent.trim().split("\n")[0].slice(0, 50);
  const lineHeight = (el) => {
    const style = getComputedStyle(el);
    return parseFloat(style.lineHeight) || 1.2 * parseFloat(style.fontSize);
  };

  // Where the text of `el` moves down to a new line without a newline character: each place as
  // [character before, character after, whitespace between them, some text around it].
  function wraps(el) {
    const found = [];
    const half = lineHeight(el) / 2;
    const range = document.createRange();
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let before = null, lastTop = null, space = false, newline = true, seen = "";
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent;
      for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        seen = (seen + ch).slice(-20);
        if (ch === "\n") { newline = true; continue; }
        if (/\s/.test(ch)) { space = true; continue; }
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (rect.width === 0 && rect.height === 0) continue;  // not rendered
        if (!newline && lastTop !== null && rect.top > lastTop + half)
          found.push([before, ch, space, seen.slice(0, -1) + " / " + text.slice(i, i + 12)]);
        before = ch;
        lastTop = rect.top;
        space = false;
        newline = false;
      }
    }
    return found;
  }

  // The element that scrolls or clips a block: Material scrolls the <code> inside a <pre>.
  const scroller = (pre) => {
    const code = pre.querySelector(":scope > code");
    return code && getComputedStyle(code).display === "block" ? code : pre;
  };
  const alnum = /[A-Za-z0-9]/;
  const drawing = /[\u2500-\u257f\u25b6\u25c0]/;  // box drawing, ▶ ◀

  for (const pre of article ? article.querySelectorAll("pre") : []) {
    if (!visible(pre)) continue;
    const box = scroller(pre);
    if (box.scrollWidth > box.clientWidth + 1)
      problems.push(`hidden to the right (${box.clientWidth} of ${box.scrollWidth}px shown): ` +
                    firstLine(pre));
    if (box.scrollHeight > box.clientHeight + 1)
      problems.push(`cut off at the bottom (${box.clientHeight} of ${box.scrollHeight}px ` +
                    "shown): " + firstLine(pre));
    const lineWraps = wraps(pre);
    if (drawing.test(pre.textContent) && lineWraps.length)
      problems.push("diagram wrapped: " + lineWraps[0][3]);
    for (const [a, b, space, where] of lineWraps)
      if (!space && alnum.test(a) && alnum.test(b)) problems.push("broken mid-word: " + where);
  }
  for (const code of article ? article.querySelectorAll("code") : []) {
    if (code.closest("pre") || !visible(code) || code.getClientRects().length < 2) continue;
    for (const [a, b, space, where] of wraps(code))
      if (!space && alnum.test(a) && alnum.test(b)) problems.push("broken mid-word: " + where);
  }

  // Pictures, drawings and tables fit their box: the article, or the nearest box between it and
  // them that clips or scrolls.
  const holder = (el) => {
    for (let up = el.parentElement; up && up !== article; up = up.parentElement)
      if (getComputedStyle(up).overflowX !== "visible") return up;
    return article;
  };
  for (const el of article ? article.querySelectorAll("img, svg, table") : []) {
    if (el.closest("mjx-container") || el.closest(".highlighttable")) continue;  // math, numbers
    const rect = el.getBoundingClientRect();
    if (rect.width === 0) continue;  // not shown (an <svg> has no offsetParent to ask)
    if (el.tagName === "TABLE" && el.scrollWidth > el.clientWidth + 1) {  // it scrolls itself
      problems.push(`wider than its box (${el.scrollWidth - el.clientWidth}px hidden): <table> ` +
                    firstLine(el));
      continue;
    }
    const box = holder(el);
    const right = box.getBoundingClientRect().left + box.clientLeft + box.clientWidth;
    if (rect.right > right + 1)
      problems.push(`wider than its box (${Math.round(rect.right - right)}px hidden): <` +
                    el.tagName.toLowerCase() + "> " + (el.getAttribute("alt") || firstLine(el)));
  }

  const figures = /^[-+\d.,:%()\u00b1\u2013\u2212x\s]+$/;  // 0.078 ± 0.023 (0.064–0.104)
  for (const cell of article ? article.querySelectorAll("td") : []) {
    if (!visible(cell) || cell.closest(".highlighttable")) continue;  // line numbers
    if (!figures.test(cell.textContent)) continue;
    const range = document.createRange();
    range.selectNodeContents(cell);
    if (range.getBoundingClientRect().height > 2.5 * lineHeight(cell))
      problems.push("squashed table cell: " + cell.textContent.trim());
  }
  document.body.setAttribute("data-layout-problems", JSON.stringify(problems));
}, 500));
