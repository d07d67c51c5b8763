/* The charts of the dashboard and the report pages (reports/views.py), drawn with the ECharts copy in
   reports/vendor/echarts. The page holds the charts' data as JSON in <script id="reports-charts"> (json_script):
   each chart is {id, title, kind, unit, categories, series: [{name, values}]}, a value an exact decimal text, a
   number or null; a heat map (kind "heatmap") has rows and cells [x, y, value] instead of series.
   Names are only ever given to ECharts as data, never written into the page as HTML. */
(function () {
    "use strict";

    var PALETTE = ["#417690", "#e0a84e", "#79aec8", "#c25b56", "#5b9a68", "#8e6bb3", "#d9822b", "#6c7a89"];
    // The page's language (zh-hans or en): numbers grouped and abbreviated as its readers write them (1.2万, 12K).
    var LANGUAGE = document.documentElement.lang || "zh-Hans";

    function number(value) {
        if (value === null || value === undefined || value === "") {
            return null;
        }
        var parsed = Number(value);
        return isFinite(parsed) ? parsed : null;
    }

    // Shares are 0..1 in the data and read as percentages.
    function scaled(value, unit) {
        var parsed = number(value);
        if (parsed === null) {
            return null;
        }
        return unit === "percent" ? Math.round(parsed * 1000000) / 10000 : parsed;
    }

    function formatted(value, unit) {
        if (value === null || value === undefined || isNaN(value)) {
            return "—";
        }
        if (unit === "money") {
            return value.toLocaleString(LANGUAGE, {minimumFractionDigits: 2, maximumFractionDigits: 2});
        }
        if (unit === "percent") {
            return value.toFixed(2) + "%";
        }
        if (unit === "count" || unit === "points") {
            return Math.round(value).toLocaleString(LANGUAGE);
        }
        return String(value);
    }

    function axisLabel(unit) {
        return {
            formatter: function (value) {
                if (unit === "percent") {
                    return value + "%";
                }
                return Math.abs(value) >= 10000 ? value.toLocaleString(LANGUAGE, {notation: "compact"}) : value;
            }
        };
    }

    function tooltipValue(unit) {
        return function (value) {
            return formatted(number(value), unit);
        };
    }

    function cartesian(chart) {
        var horizontal = chart.kind === "bar";
        var categoryAxis = {type: "category", data: chart.categories, axisLabel: {interval: 0, hideOverlap: true}};
        var valueAxis = {type: "value", axisLabel: axisLabel(chart.unit)};
        return {
            color: PALETTE,
            tooltip: {trigger: "axis", valueFormatter: tooltipValue(chart.unit)},
            legend: {show: chart.series.length > 1, top: 0},
            grid: {left: 8, right: 16, top: chart.series.length > 1 ? 32 : 12, bottom: 8, containLabel: true},
            xAxis: horizontal ? valueAxis : categoryAxis,
            yAxis: horizontal ? categoryAxis : valueAxis,
            series: chart.series.map(function (series) {
                return {
                    name: series.name,
                    type: chart.kind === "line" ? "line" : "bar",
                    smooth: false,
                    data: series.values.map(function (value) { return scaled(value, chart.unit); })
                };
            })
        };
    }

    function pie(chart) {
        var series = chart.series[0] || {name: "", values: []};
        return {
            color: PALETTE,
            tooltip: {
                trigger: "item",
                formatter: function (item) {
                    return echarts.format.encodeHTML(item.name) + ": " + formatted(item.value, chart.unit) +
                        " (" + item.percent.toFixed(2) + "%)";
                }
            },
            legend: {type: "scroll", bottom: 0},
            series: [{
                name: series.name,
                type: "pie",
                radius: ["35%", "65%"],
                center: ["50%", "45%"],
                label: {formatter: "{b}: {d}%"},
                data: chart.categories.map(function (category, index) {
                    return {name: category, value: scaled(series.values[index], chart.unit)};
                })
            }]
        };
    }

    function heatmap(chart) {
        var values = chart.cells.map(function (cell) { return number(cell[2]) || 0; });
        return {
            tooltip: {
                formatter: function (item) {
                    return echarts.format.encodeHTML(chart.rows[item.value[1]]) + " → " +
                        echarts.format.encodeHTML(chart.categories[item.value[0]]) + ": " +
                        formatted(item.value[2], chart.unit);
                }
            },
            grid: {left: 8, right: 16, top: 12, bottom: 56, containLabel: true},
            xAxis: {type: "category", data: chart.categories, splitArea: {show: true}},
            yAxis: {type: "category", data: chart.rows, inverse: true, splitArea: {show: true}},
            visualMap: {
                min: 0, max: Math.max.apply(null, values.concat([1])), calculable: true, orient: "horizontal",
                left: "center", bottom: 0, inRange: {color: ["#f3f7fa", "#79aec8", "#264b5d"]}
            },
            series: [{
                type: "heatmap",
                data: chart.cells.map(function (cell) { return [cell[0], cell[1], number(cell[2])]; }),
                label: {show: true, formatter: function (item) { return formatted(item.value[2], chart.unit); }}
            }]
        };
    }

    function option(chart) {
        if (chart.kind === "pie") {
            return pie(chart);
        }
        if (chart.kind === "heatmap") {
            return heatmap(chart);
        }
        return cartesian(chart);
    }

    function draw() {
        var source = document.getElementById("reports-charts");
        if (!source || typeof echarts === "undefined") {
            return;
        }
        var drawn = [];
        JSON.parse(source.textContent).forEach(function (chart) {
            var element = document.getElementById(chart.id);
            if (!element) {
                return;
            }
            var instance = echarts.init(element, null, {renderer: "canvas"});
            instance.setOption(option(chart));
            drawn.push(instance);
        });
        window.addEventListener("resize", function () {
            drawn.forEach(function (instance) { instance.resize(); });
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", draw);
    } else {
        draw();
    }
}());
