/**
 * @module chart
 * A time-series chart (uPlot) that resizes with its box and takes new data without being rebuilt.
 */

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
  /** Drawn as bars (counts per minute) instead of a line. */
  bars?: boolean;
}

interface ChartProps {
  title: string;
  /** x: unix seconds. */
  x: number[];
  series: Series[];
  values: (number | null)[][];
  unit: (value: number) => string;
  testId: string;
}

const barPaths = uPlot.paths.bars?.({ size: [0.6, 24] });

export function TimeChart({ title, x, series, values, unit, testId }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: element.clientWidth,
      height: 180,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // Half a minute of room each side, so the newest minute's bar is not cut in half.
        x: { time: true, range: (_u, min, max) => [min - 30, max + 30] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
      },
      axes: [
        { stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,0.15)' } },
        {
          stroke: 'currentColor',
          grid: { stroke: 'rgba(128,128,128,0.15)' },
          size: 64,
          values: (_u, ticks) => ticks.map(unit),
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          // Lines join the minutes that have a value and mark each one, since most minutes may be empty.
          ...(s.bars
            ? { fill: s.color, points: { show: false }, ...(barPaths && { paths: barPaths }) }
            : { spanGaps: true, points: { show: true, size: 6 } }),
        })),
      ],
    };
    plot.current = new uPlot(options, [x, ...values] as uPlot.AlignedData, element);
    const observer = new ResizeObserver(() =>
      plot.current?.setSize({ width: element.clientWidth, height: 180 }),
    );
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // Rebuilt only when the set of series changes; data goes through setData below.
  }, [series.map((s) => s.label).join()]);

  useEffect(() => {
    plot.current?.setData([x, ...values] as uPlot.AlignedData);
  }, [x, values]);

  return (
    <figure class="chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      <div ref={box} />
    </figure>
  );
}
