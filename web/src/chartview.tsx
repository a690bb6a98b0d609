// A chart on a canvas; Chart.js arrives with the first chart shown.
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChartConfiguration } from "chart.js";

let mod: Promise<typeof import("./charts")> | null = null;
function charts() {
  return (mod ||= import("./charts"));
}

export function ChartView(p: { config: ChartConfiguration; label: string; height?: number; testid?: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    let chart: { destroy(): void } | null = null;
    let dead = false;
    charts().then((m) => {
      if (dead || !ref.current) return;
      chart = m.create(ref.current, { ...p.config, options: { responsive: true, maintainAspectRatio: false, ...(p.config.options || {}) } } as ChartConfiguration);
      setReady(true);
    });
    return () => {
      dead = true;
      chart?.destroy();
    };
  }, [p.config]);
  return (
    <div class="chart" style={{ height: (p.height || 220) + "px" }} data-testid={p.testid} data-ready={ready ? "1" : "0"}>
      <canvas ref={ref} role="img" aria-label={p.label} />
    </div>
  );
}
