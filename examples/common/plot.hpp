// examples/common/plot.hpp: columns of a CSV file drawn into a PNG with gnuplot.
//
//   examples::draw_png("history.csv", "history.png", "epoch",
//                      {{"Loss", "epoch", "binary cross-entropy", {{"loss", "train"}, {"val_loss", "validation"}}},
//                       {"Accuracy", "epoch", "accuracy", {{"accuracy", "train"}, {"val_accuracy", "validation"}}}});
//
// Each panel is one plot (title, axis labels, a legend with one entry per line); several panels are drawn side by
// side. The CSV needs a header row; columns are named, so a reordered CSV still plots right, and a misspelled
// column is reported instead of plotting the wrong one. The gnuplot script is written beside the PNG (same name,
// .gp), so a reader can change the plot and run `gnuplot file.gp` again.
//
// The examples write their numbers as CSV whatever happens; the PNG is a convenience. Without gnuplot (Debian:
// apt-get install gnuplot-nox), draw_png says where the data are and returns false; it never throws for that.
#ifndef XRNN_EXAMPLES_COMMON_PLOT_HPP
#define XRNN_EXAMPLES_COMMON_PLOT_HPP

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace examples
{
    struct plot_line
    {
        std::string column;  // a column name from the CSV's header row
        std::string title;   // its legend entry
    };

    struct plot_panel
    {
        std::string title;
        std::string xlabel;
        std::string ylabel;
        std::vector<plot_line> lines;
    };

    namespace detail
    {
        /// 'text' quoted for gnuplot: inside single quotes only the quote itself needs escaping (doubled).
        inline std::string gnuplot_quote(const std::string& text)
        {
            std::string quoted = "'";
            for (char c : text)
            {
                quoted += c == '\'' ? std::string("''") : std::string(1, c);
            }
            return quoted + "'";
        }

        /// 'text' quoted for the POSIX shell.
        inline std::string shell_quote(const std::string& text)
        {
            std::string quoted = "'";
            for (char c : text)
            {
                quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
            }
            return quoted + "'";
        }

        inline std::vector<std::string> split_csv_line(const std::string& line)
        {
            std::vector<std::string> fields;
            std::stringstream stream(line);
            std::string field;
            while (std::getline(stream, field, ','))
            {
                if (!field.empty() && field.back() == '\r')
                {
                    field.pop_back();
                }
                fields.push_back(field);
            }
            return fields;
        }

        /// The CSV's header and its numeric columns (a cell that does not parse is NaN).
        struct csv_table
        {
            std::vector<std::string> header;
            std::vector<std::vector<double>> columns;

            int index_of(const std::string& name) const
            {
                const auto it = std::find(header.begin(), header.end(), name);
                return it == header.end() ? -1 : static_cast<int>(it - header.begin());
            }
        };

        inline bool read_csv(const std::string& path, csv_table& table)
        {
            std::ifstream in(path);
            std::string line;
            if (!in || !std::getline(in, line))
            {
                return false;
            }
            table.header = split_csv_line(line);
            table.columns.assign(table.header.size(), {});
            while (std::getline(in, line))
            {
                const std::vector<std::string> fields = split_csv_line(line);
                for (std::size_t c = 0; c < table.columns.size(); ++c)
                {
                    char* end = nullptr;
                    const char* text = c < fields.size() ? fields[c].c_str() : "";
                    const double v = std::strtod(text, &end);
                    table.columns[c].push_back(end == text ? std::numeric_limits<double>::quiet_NaN() : v);
                }
            }
            return true;
        }

        /// A y axis is drawn on a log scale when its values are all positive and span more than a decade: a loss
        /// that falls from 1 to 0.01 is then readable over all epochs instead of a flat line after the first few.
        inline bool wants_log_scale(const csv_table& table, const plot_panel& panel)
        {
            double low = std::numeric_limits<double>::infinity();
            double high = 0.0;
            for (const plot_line& line : panel.lines)
            {
                for (double v : table.columns[static_cast<std::size_t>(table.index_of(line.column))])
                {
                    if (std::isnan(v))
                    {
                        continue;
                    }
                    if (v <= 0.0)
                    {
                        return false;
                    }
                    low = std::min(low, v);
                    high = std::max(high, v);
                }
            }
            return high > 0.0 && high / low > 10.0;
        }

        inline bool whole_numbers(const std::vector<double>& values)
        {
            return std::all_of(values.begin(), values.end(),
                               [](double v) { return std::isfinite(v) && v == std::floor(v); });
        }

        /// Terminal, output file, CSV format and the look shared by every panel.
        inline void write_preamble(std::ostream& gp, const std::string& png_path, const std::vector<plot_panel>& panels)
        {
            const std::size_t width = std::max<std::size_t>(800, 600 * panels.size());
            const std::size_t height = 500;
            std::size_t most_lines = 1;
            for (const plot_panel& panel : panels)
            {
                most_lines = std::max(most_lines, panel.lines.size());
            }
            const std::string script_name = std::filesystem::path(png_path).stem().string() + ".gp";
            gp << "# Written by an xtensor-rnn example; run `gnuplot " << script_name << "` to redraw.\n"
               << "# pngcairo draws antialiased lines; the plain png terminal is the fallback.\n"
               << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               << "    set terminal pngcairo size " << width << "," << height << " font 'Sans,11' noenhanced\n"
               << "} else {\n"
               << "    set terminal png size " << width << "," << height << " noenhanced\n"
               << "}\n"
               << "set output " << gnuplot_quote(png_path) << "\n"
               << "set datafile separator ','\n"
               << "set datafile missing 'nan'\n"
               << "set grid lc rgb '#dddddd'\n"
               << "set key below horizontal box\n"                 // below the plot: it never hides a curve
               << "set bmargin " << 4 + most_lines << "\n"          // room for the x label and a key row per line
               << "set style line 1 lc rgb '#1f77b4' lw 2\n"
               << "set style line 2 lc rgb '#d62728' lw 2\n"
               << "set style line 3 lc rgb '#2ca02c' lw 2\n"
               << "set style line 4 lc rgb '#9467bd' lw 2\n";
        }

        /// One panel: its labels, its y scale, and a plot command with a line per column.
        inline void write_panel(std::ostream& gp, const std::string& csv_path, const csv_table& table, int x,
                                bool points, const plot_panel& panel)
        {
            const bool log_y = wants_log_scale(table, panel);
            gp << "set title " << gnuplot_quote(panel.title) << "\n"
               << "set xlabel " << gnuplot_quote(panel.xlabel) << "\n"
               << "set ylabel " << gnuplot_quote(panel.ylabel + (log_y ? " (log scale)" : "")) << "\n"
               << (log_y ? "set logscale y\n" : "unset logscale y\n");
            if (points)
            {
                // A margin so that no mark sits on the border, half cut (a log axis already extends to decades).
                gp << "set offsets graph 0.03, graph 0.03, " << (log_y ? "0, 0" : "graph 0.06, graph 0.06") << "\n";
            }
            gp << "plot ";
            for (std::size_t k = 0; k < panel.lines.size(); ++k)
            {
                const int y = table.index_of(panel.lines[k].column) + 1;
                gp << (k == 0 ? "" : ", \\\n     ") << gnuplot_quote(csv_path) << " skip 1 using " << x << ":" << y
                   << " with " << (points ? "linespoints" : "lines") << " ls " << (k % 4) + 1
                   << (points ? " pt 7 ps 0.7" : "") << " title " << gnuplot_quote(panel.lines[k].title);
            }
            gp << "\n";
        }

        inline std::string gnuplot_script(const std::string& csv_path, const std::string& png_path,
                                          const csv_table& table, const std::string& x_column,
                                          const std::vector<plot_panel>& panels)
        {
            std::ostringstream gp;
            write_preamble(gp, png_path, panels);
            const int x = table.index_of(x_column) + 1;  // gnuplot counts columns from 1
            // A few dozen points (epochs, say) are marked one by one; a long series is a plain line.
            const std::size_t rows = table.columns.front().size();
            const bool points = rows <= 40;
            if (points)
            {
                gp << "set autoscale xfix\n";  // x fitted to the data, plus the margin of the offsets
            }
            if (rows <= 20 && whole_numbers(table.columns[static_cast<std::size_t>(x - 1)]))
            {
                gp << "set xtics 1\n";  // epochs 1, 2, 3 rather than 1, 1.5, 2
            }
            if (panels.size() > 1)
            {
                gp << "set multiplot layout 1," << panels.size() << "\n";
            }
            for (const plot_panel& panel : panels)
            {
                write_panel(gp, csv_path, table, x, points, panel);
            }
            if (panels.size() > 1)
            {
                gp << "unset multiplot\n";
            }
            return gp.str();
        }
    }  // namespace detail

    /// Draws the panels from csv_path into png_path (and writes the script to png_path with .gp); false, with a
    /// message on `log` saying why and where the data are, when no PNG was written.
    inline bool draw_png(const std::string& csv_path, const std::string& png_path, const std::string& x_column,
                         const std::vector<plot_panel>& panels, std::ostream& log = std::cout)
    {
#if defined(_WIN32)
        const bool have_gnuplot = std::system("where gnuplot >NUL 2>&1") == 0;
#else
        const bool have_gnuplot = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
#endif
        if (!have_gnuplot)
        {
            log << "no plot: gnuplot is not installed, so " << png_path << " was not drawn; the data are in "
                << csv_path << " (to get the plot, install gnuplot, e.g. `apt-get install gnuplot-nox`, and run "
                << "again)\n";
            return false;
        }

        detail::csv_table table;
        if (!detail::read_csv(csv_path, table))
        {
            log << "no plot: cannot read " << csv_path << "\n";
            return false;
        }
        if (panels.empty() || table.columns.empty() || table.columns.front().empty())
        {
            log << "no plot: " << (panels.empty() ? "no panel to draw from " : "no data rows in ") << csv_path << "\n";
            return false;
        }
        std::vector<std::string> wanted{x_column};
        for (const plot_panel& panel : panels)
        {
            for (const plot_line& line : panel.lines)
            {
                wanted.push_back(line.column);
            }
        }
        for (const std::string& column : wanted)
        {
            if (table.index_of(column) < 0)
            {
                log << "no plot: " << csv_path << " has no column '" << column << "'\n";
                return false;
            }
        }

        // Absolute paths in the script, so that `gnuplot file.gp` works from any directory.
        std::error_code ignored;
        const std::string csv_abs = std::filesystem::absolute(csv_path, ignored).lexically_normal().string();
        const std::string png_abs = std::filesystem::absolute(png_path, ignored).lexically_normal().string();
        const std::string script_path = std::filesystem::path(png_path).replace_extension(".gp").string();
        {
            std::ofstream script(script_path);
            script << detail::gnuplot_script(csv_abs, png_abs, table, x_column, panels);
            if (!script)
            {
                log << "no plot: cannot write " << script_path << "\n";
                return false;
            }
        }

        std::filesystem::remove(png_path, ignored);  // so that a stale PNG is never taken for a new one
        const std::string command = "gnuplot " + detail::shell_quote(script_path) + " 2>&1";
        if (std::system(command.c_str()) != 0 || !std::filesystem::exists(png_path))
        {
            log << "no plot: gnuplot failed on " << script_path << "; the data are in " << csv_path << "\n";
            return false;
        }
        return true;
    }
}  // namespace examples

#endif
