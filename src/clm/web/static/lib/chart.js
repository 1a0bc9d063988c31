// One ECharts chart in a panel: created on mount, updated with its option, disposed on leave.
import { useEffect, useRef } from "preact/hooks";
import * as echarts from "echarts";
import { html } from "./html.js";

export function Chart({ id, option, height = 320 }) {
  const box = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    chart.current = echarts.init(box.current, null, { renderer: "canvas" });
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
  return html`<div id=${id} class="chart" role="img" aria-label=${id} style=${{ height: `${height}px` }} ref=${box}></div>`;
}
