// examples/common/cli.hpp: the small command-line parser the examples share.
//
//   examples::cli args(argc, argv, "usage: sine_forecast [--epochs N] [--out DIR]\n");
//   const auto epochs = args.number<std::size_t>("epochs", 20);   // --epochs 30 or --epochs=30
//   const std::string out = args.get("out", ".");                  // --out results
//   const bool quiet = args.flag("quiet");                         // --quiet
//   args.finish();                                                 // rejects any option nobody asked for
//
// Every mistake ends the program with exit code 2, a message that names the option, and the usage text:
// a number that does not parse completely ("--epochs 3x"), a value missing, an unknown option. --help (or -h)
// prints the usage and exits with 0. Options are looked up lazily, so their order on the command line does
// not matter; when an option is given twice, the last value counts, as with most command-line tools.
#ifndef XRNN_EXAMPLES_COMMON_CLI_HPP
#define XRNN_EXAMPLES_COMMON_CLI_HPP

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace examples
{
    class cli
    {
    public:
        cli(int argc, char** argv, std::string usage)
            : m_program(argc > 0 ? base_name(argv[0]) : "example")
            , m_usage(std::move(usage))
        {
            for (int a = 1; a < argc; ++a)
            {
                m_args.push_back({argv[a], false});
            }
            for (const argument& arg : m_args)
            {
                if (arg.text == "--help" || arg.text == "-h")
                {
                    std::cout << m_usage;
                    if (!m_usage.empty() && m_usage.back() != '\n')
                    {
                        std::cout << '\n';
                    }
                    std::exit(0);
                }
            }
        }

        /// True when --name was given; a presence flag takes no value.
        bool flag(const std::string& name)
        {
            bool present = false;
            for (argument& arg : m_args)
            {
                if (arg.used)
                {
                    continue;
                }
                if (arg.text == "--" + name)
                {
                    arg.used = true;
                    present = true;
                }
                else if (arg.text.rfind("--" + name + "=", 0) == 0)
                {
                    fail("--" + name + " is a flag and takes no value (got '" + arg.text + "')");
                }
            }
            return present;
        }

        /// The value of --name VALUE or --name=VALUE, or fallback when the option is absent.
        std::string get(const std::string& name, const std::string& fallback)
        {
            std::string value = fallback;
            take(name, value);
            return value;
        }

        /// The value of --name as an integer or floating-point N, parsed strictly: "12abc", "1e3" for an
        /// integer, "-1" for an unsigned type, a value out of N's range or a non-finite float are all refused.
        template <class N>
        N number(const std::string& name, N fallback)
        {
            static_assert(std::is_arithmetic<N>::value && !std::is_same<N, bool>::value,
                          "cli::number: N must be an integer or floating-point type (use flag() for booleans)");
            std::string text;
            if (!take(name, text))
            {
                return fallback;
            }
            N value{};
            if (!parse(text, value))
            {
                fail("--" + name + " expects " + kind_of<N>() + " but got '" + text + "'");
            }
            return value;
        }

        /// Call after every flag/get/number: fails on any argument that no call asked for (a typo, most often).
        void finish()
        {
            for (const argument& arg : m_args)
            {
                if (!arg.used)
                {
                    fail(arg.text.rfind("--", 0) == 0 ? "unknown option " + arg.text.substr(0, arg.text.find('='))
                                                      : "unexpected argument '" + arg.text + "'");
                }
            }
        }

    private:
        struct argument
        {
            std::string text;
            bool used;
        };

        static std::string base_name(const std::string& path)
        {
            const auto slash = path.find_last_of("/\\");
            return slash == std::string::npos ? path : path.substr(slash + 1);
        }

        /// Finds the last --name VALUE or --name=VALUE, marks every occurrence used; false when absent.
        bool take(const std::string& name, std::string& value)
        {
            bool found = false;
            const std::string option = "--" + name;
            for (std::size_t i = 0; i < m_args.size(); ++i)
            {
                argument& arg = m_args[i];
                if (arg.used)
                {
                    continue;
                }
                if (arg.text.rfind(option + "=", 0) == 0)
                {
                    arg.used = true;
                    value = arg.text.substr(option.size() + 1);
                    found = true;
                }
                else if (arg.text == option)
                {
                    // The value is the next argument, unless that is missing or is itself an option
                    // ("-0.5" is a value: only a leading "--" marks an option).
                    if (i + 1 == m_args.size() || m_args[i + 1].used || m_args[i + 1].text.rfind("--", 0) == 0)
                    {
                        fail(option + " needs a value");
                    }
                    arg.used = true;
                    m_args[i + 1].used = true;
                    value = m_args[i + 1].text;
                    found = true;
                    ++i;
                }
            }
            return found;
        }

        template <class N>
        static std::string kind_of()
        {
            if (std::is_floating_point<N>::value)
            {
                return "a number";
            }
            return std::is_unsigned<N>::value ? "a whole number >= 0" : "a whole number";
        }

        template <class N>
        static bool parse(const std::string& text, N& value)
        {
            if (text.empty() || std::isspace(static_cast<unsigned char>(text.front())))
            {
                return false;  // strto* would skip leading blanks; a strict parser does not
            }
            char* end = nullptr;
            errno = 0;
            if constexpr (std::is_floating_point<N>::value)
            {
                const long double v = std::strtold(text.c_str(), &end);
                if (errno != 0 || *end != '\0' || !std::isfinite(v) || std::fabs(v) > std::numeric_limits<N>::max())
                {
                    return false;
                }
                value = static_cast<N>(v);
            }
            else if constexpr (std::is_unsigned<N>::value)
            {
                if (text.front() == '-')
                {
                    return false;  // strtoull would wrap "-1" around to the largest value
                }
                const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
                if (errno != 0 || *end != '\0' || v > std::numeric_limits<N>::max())
                {
                    return false;
                }
                value = static_cast<N>(v);
            }
            else
            {
                const long long v = std::strtoll(text.c_str(), &end, 10);
                if (errno != 0 || *end != '\0' || v < std::numeric_limits<N>::min()
                    || v > std::numeric_limits<N>::max())
                {
                    return false;
                }
                value = static_cast<N>(v);
            }
            return true;
        }

        [[noreturn]] void fail(const std::string& message) const
        {
            std::cerr << m_program << ": " << message << "\n\n" << m_usage;
            if (!m_usage.empty() && m_usage.back() != '\n')
            {
                std::cerr << '\n';
            }
            std::exit(2);
        }

        std::string m_program;
        std::string m_usage;
        std::vector<argument> m_args;
    };
}  // namespace examples

#endif
