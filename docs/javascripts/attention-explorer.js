// The attention explorer (docs/attention-explorer.md): a dozen samples of the trained model and,
// for the query cell under the pointer or the keyboard's cursor, the attention maps of G's and
// D's attention layers over the same sample.
//
// The data is the JSON that benchmarks/attention_explorer.py writes, embedded in the page in a
// <script type="application/json"> element named by the explorer's data-source: nothing is
// fetched, so the page works offline and opened from disk.
//
// Read back by tests/test_docs_attention_explorer.py: the explorer's element carries data-ready
// once drawn, data-sample (the sample's index) and data-query ("row,col" of the query cell); each
// key cell of a map carries data-layer, data-key ("row,col") and data-weight (the weight it
// shows, a fraction of 1).
(function () {
  "use strict";
  if (window.attentionExplorerLoaded) return; // instant navigation runs the page's tags again
  window.attentionExplorerLoaded = true;

  const FIXED_TOP = 0.5; // the fixed scale runs from 0 to 50%
  const ARROWS = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  const NETWORK = { G: "G's attention", D: "D's attention" };
  let instances = 0; // for unique radio-group names

  // The ramp of the course's static attention figures (accelerated/figures/images.py, _heat):
  // black, red, yellow, white as t goes from 0 to 1.
  function heat(t) {
    const clip = (v) => Math.min(1, Math.max(0, v));
    return [clip(3 * t), clip(3 * t - 1), clip(3 * t - 2)].map((v) => Math.round(255 * v));
  }

  function percent(w) {
    return (100 * w).toFixed(w < 0.1 ? 1 : 0) + "%";
  }

  function element(tag, className, attributes) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  function drawSample(canvas, pixels, side) {
    canvas.width = canvas.height = side;
    const image = canvas.getContext("2d").createImageData(side, side);
    for (let p = 0; p < side * side; p++) {
      image.data.set(pixels.slice(3 * p, 3 * p + 3), 4 * p);
      image.data[4 * p + 3] = 255;
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
  }

  function queryMark(side) {
    const mark = element("div", "ae-query", { "aria-hidden": "true" });
    mark.style.width = mark.style.height = 100 / side + "%";
    return mark;
  }

  function placeMark(mark, query, side) {
    mark.style.top = (100 * query[0]) / side + "%";
    mark.style.left = (100 * query[1]) / side + "%";
  }

  class Explorer {
    constructor(root, data) {
      this.root = root;
      this.data = data;
      this.R = data.resolution;
      this.side = data.query_side;
      this.keySide = data.key_side;
      this.layers = Object.keys(data.samples[0].attention);
      this.sample = 0;
      this.query = this.startingQuery(0);
      this.scale = "fixed";
      this.build();
      this.show({ how: "start" });
      root.dataset.ready = "true";
    }

    // The brightest query cell of the left half of sample b: a query on the left twin.
    startingQuery(b) {
      const px = this.data.samples[b].pixels;
      const per = this.R / this.side;
      let best = [0, 0];
      let most = -1;
      for (let r = 0; r < this.side; r++) {
        for (let c = 0; c < this.side / 2; c++) {
          let sum = 0;
          for (let y = r * per; y < (r + 1) * per; y++) {
            for (let x = c * per; x < (c + 1) * per; x++) {
              for (let k = 0; k < 3; k++) sum += px[3 * (y * this.R + x) + k];
            }
          }
          if (sum > most) [most, best] = [sum, [r, c]];
        }
      }
      return best;
    }

    build() {
      const d = this.data;
      this.root.replaceChildren();
      instances += 1;

      const picker = element("div", "ae-samples", { role: "group", "aria-label": "Samples" });
      this.thumbs = d.samples.map((s, b) => {
        const n = d.samples.slice(0, b).filter((t) => t.label === s.label).length + 1;
        const name = `${d.classes[s.label]} ${n}`;
        const button = element("button", "ae-thumb", { type: "button", "aria-pressed": "false",
          "aria-label": `sample: ${name}`, title: name });
        const canvas = element("canvas");
        drawSample(canvas, s.pixels, this.R);
        button.append(canvas);
        button.addEventListener("click", () => {
          this.sample = b;
          this.show({ how: "sample" });
        });
        picker.append(button);
        return button;
      });

      const views = element("div", "ae-views");
      const imageFigure = element("figure", "ae-view");
      const frame = element("div", "ae-frame");
      this.canvas = element("canvas", "ae-image", { tabindex: "0", role: "application",
        "aria-roledescription": "attention query picker",
        "aria-label": "The sample. Click or hover a pixel to see its query's attention; " +
          "arrow keys move the query cell." });
      this.imageMark = queryMark(this.side);
      frame.append(this.canvas, this.imageMark);
      this.imageCaption = element("figcaption");
      imageFigure.append(frame, this.imageCaption);
      views.append(imageFigure);

      this.maps = {};
      for (const name of this.layers) {
        const figure = element("figure", "ae-view", { "data-layer": name });
        const map = element("div", "ae-frame ae-map");
        const keys = element("div", "ae-keys");
        keys.style.gridTemplateColumns = `repeat(${this.keySide}, 1fr)`;
        const cells = [];
        for (let i = 0; i < this.keySide * this.keySide; i++) {
          const row = Math.floor(i / this.keySide);
          const col = i % this.keySide;
          const cell = element("div", "ae-key", { "data-layer": name, "data-key": `${row},${col}` });
          cell.append(element("span", "ae-number")); // drawn above the sample and the mark
          keys.append(cell);
          cells.push(cell);
        }
        const ghost = element("canvas", "ae-ghost", { "aria-hidden": "true" });
        const mark = queryMark(this.side);
        map.append(keys, ghost, mark);
        const caption = element("figcaption");
        figure.append(map, caption);
        views.append(figure);
        this.maps[name] = { cells, ghost, mark, caption };
      }

      this.readout = element("p", "ae-readout", { "aria-live": "polite" });

      const scale = element("fieldset", "ae-scale");
      const legendTitle = element("legend");
      legendTitle.textContent = "Colour scale";
      scale.append(legendTitle);
      const group = `ae-scale-${instances}`;
      for (const [value, text] of [["fixed", `0 to ${percent(FIXED_TOP)}, the same for every map`],
                                   ["stretch", "0 to this map's largest weight"]]) {
        const label = element("label");
        const input = element("input", "", { type: "radio", name: group, value });
        input.checked = value === this.scale;
        input.addEventListener("change", () => {
          this.scale = value;
          this.show({ how: "scale" });
        });
        label.append(input, " " + text);
        scale.append(label);
      }
      this.legend = element("div", "ae-legend");
      const bar = element("div", "ae-legend-bar", { "aria-hidden": "true" });
      this.ticks = element("div", "ae-legend-ticks");
      this.legendText = element("p", "ae-legend-text");
      this.legend.append(bar, this.ticks, this.legendText);

      this.root.append(picker, views, this.readout, scale, this.legend);
      this.listen();
    }

    listen() {
      const at = (event) => {
        const box = this.canvas.getBoundingClientRect();
        const clamp = (v) => Math.min(this.R - 1, Math.max(0, Math.floor(v * this.R)));
        const pixel = [clamp((event.clientY - box.top) / box.height),
                       clamp((event.clientX - box.left) / box.width)];
        const per = this.R / this.side;
        return { pixel, query: [Math.floor(pixel[0] / per), Math.floor(pixel[1] / per)] };
      };
      this.canvas.addEventListener("pointermove", (event) => {
        this.show({ how: "hover", ...at(event) });
      });
      this.canvas.addEventListener("pointerleave", () => this.show({ how: "selected" }));
      this.canvas.addEventListener("click", (event) => {
        const found = at(event);
        this.query = found.query;
        this.show({ how: "click", ...found });
      });
      this.canvas.addEventListener("keydown", (event) => {
        const step = ARROWS[event.key];
        if (!step) return;
        event.preventDefault(); // the page does not scroll
        const clamp = (v) => Math.min(this.side - 1, Math.max(0, v));
        this.query = [clamp(this.query[0] + step[0]), clamp(this.query[1] + step[1])];
        this.show({ how: "key" });
      });
    }

    // Draw the current sample with `view.query` (a hover) or the selected query.
    show(view) {
      const d = this.data;
      const s = d.samples[this.sample];
      const query = view.how === "hover" ? view.query : this.query;
      const side = this.side;
      const per = this.R / side;
      const name = this.thumbs[this.sample].title;
      this.root.dataset.sample = String(this.sample);
      this.root.dataset.query = query.join(",");
      this.thumbs.forEach((b, i) => b.setAttribute("aria-pressed", String(i === this.sample)));
      drawSample(this.canvas, s.pixels, this.R);
      placeMark(this.imageMark, query, side);
      this.imageCaption.textContent = `Sample: ${name}`;

      const unit = d.weight_unit;
      const tops = {};
      for (const layer of this.layers) {
        const map = this.maps[layer];
        const weights = s.attention[layer][query[0] * side + query[1]].map((w) => w * unit);
        const largest = Math.max(...weights);
        const top = this.scale === "fixed" ? FIXED_TOP : largest;
        tops[layer] = largest;
        weights.forEach((w, i) => {
          const cell = map.cells[i];
          const rgb = heat(w / top);
          cell.style.backgroundColor = `rgb(${rgb.join(",")})`;
          cell.classList.toggle("ae-light", 0.3 * rgb[0] + 0.6 * rgb[1] + 0.1 * rgb[2] > 140);
          cell.dataset.weight = String(w);
          cell.firstChild.textContent = percent(w);
        });
        drawSample(map.ghost, s.pixels, this.R);
        placeMark(map.mark, query, side);
        const best = weights.indexOf(largest);
        const where = `key cell (row ${Math.floor(best / this.keySide)}, ` +
          `column ${best % this.keySide})`;
        map.caption.textContent = `${NETWORK[layer[0]] || layer} (${layer}, γ = ` +
          `${d.gamma[layer].toFixed(2)}): largest weight ${percent(largest)}, on ${where}`;
      }

      const rows = `rows ${query[0] * per}–${query[0] * per + per - 1}`;
      const cols = `columns ${query[1] * per}–${query[1] * per + per - 1}`;
      const cell = `Query cell (row ${query[0]}, column ${query[1]}) of ${side}x${side}, ` +
        `which covers image pixels ${rows}, ${cols}`;
      const pixel = view.pixel ? `pixel (row ${view.pixel[0]}, column ${view.pixel[1]})` : "";
      const lead = { click: `You clicked ${pixel}. `, hover: `Pointer on ${pixel}. ` }[view.how];
      this.readout.textContent = (lead || "") + cell + ".";
      this.drawLegend(tops);
    }

    drawLegend(tops) {
      const keys = this.keySide * this.keySide;
      const uniform = `${+(100 / keys).toFixed(2)}%`; // 6.25% for 4x4 keys
      const ticks = this.scale === "fixed"
        ? [[0, "0%"], [1 / keys / FIXED_TOP, `${uniform} (uniform)`], [0.5, percent(FIXED_TOP / 2)],
           [1, `${percent(FIXED_TOP)} or more`]]
        : [[0, "0%"], [1, "the map's largest weight"]];
      this.ticks.replaceChildren(...ticks.map(([at, text]) => {
        const tick = element("span", "ae-tick");
        tick.style.left = 100 * at + "%";
        tick.textContent = text;
        return tick;
      }));
      const largest = this.layers.map((l) => `${l} ${percent(tops[l])}`).join(", ");
      this.legendText.textContent =
        "The colour of a key cell is the share of the query's attention it gets (β of eq. 1): " +
        "black none, then red, yellow and white for more; its number says the same. " +
        (this.scale === "fixed"
          ? `White is ${percent(FIXED_TOP)} or more; a query that looked everywhere alike ` +
            `would give each of the ${keys} cells ${uniform}. `
          : `Each map is stretched to its own largest weight (here ${largest}). `) +
        "The outlined square is the query cell; the sample shows through faintly.";
    }
  }

  function init() {
    for (const root of document.querySelectorAll("[data-attention-explorer]")) {
      if (root.dataset.ready) continue;
      const source = document.getElementById(root.dataset.source);
      try {
        new Explorer(root, JSON.parse(source.textContent));
      } catch (error) {
        root.textContent = `The attention explorer could not read its data (${error.message}).`;
      }
    }
  }

  // mkdocs-material's document$ emits each page, also after instant navigation.
  if (window.document$) window.document$.subscribe(init);
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
