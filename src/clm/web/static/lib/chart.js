// One ECharts chart in a panel: created on mount, updated with its option, disposed on leave.
import { useEffect, useRef } from "preact/hooks";
import * as echarts from "echarts";
import { html } from "./html.js";

// onPoint(index): a click anywhere in the plot picks the category (e.g. the day) under it,
// not only a click on a symbol, so an area chart's day is one click.
export function Chart({ id, option, height = 320, onPoint }) {
  const box = useRef(null);
  const chart = useRef(null);
  const picked = useRef(onPoint);
  picked.current = onPoint;
  useEffect(() => {
    chart.current = echarts.init(box.current, null, { renderer: "canvas" });
    box.current.chart = chart.current; // for tests and the console: the instance behind the box
    chart.current.getZr().on("click", (event) => {
      const at = [event.offsetX, event.offsetY];
      if (!picked.current || !chart.current.containPixel({ gridIndex: 0 }, at)) return;
      const [index] = chart.current.convertFromPixel({ gridIndex: 0 }, at);
      if (Number.isFinite(index)) picked.current(Math.round(index));
    });
    const resize = () => chart.current && chart.current.resize();
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      chart.current.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    // No animation: a report is read, not watched, and a screenshot shows the whole chart.
    if (chart.current && option) chart.current.setOption({ animation: false, ...option }, true);
  }, [option]);
  const cursor = onPoint ? "pointer" : undefined;
  return html`<div id=${id} class="chart" role="img" aria-label=${id} style=${{ height: `${height}px`, cursor }} ref=${box}></div>`;
}
