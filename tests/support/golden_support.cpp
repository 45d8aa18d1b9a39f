#include "support/golden_support.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "tapegrad/framework/io/hdf5_file.h"

namespace tg::test {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

std::string fmt(double v, int precision) {
  std::ostringstream os;
  os.precision(precision);
  os << v;
  return os.str();
}

// Flat row-major index -> "[i, j, k]".
std::string index_string(int64_t flat, const Shape& shape) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return to_string(index);
}

DType parse_dtype(const std::string& text, const std::string& where) {
  if (text == "float32") return DType::Float32;
  if (text == "float64") return DType::Float64;
  throw std::runtime_error(where + ": attribute dtype is '" + text + "', expected float32 or float64");
}

nlohmann::json parse_config(const std::string& text, const std::string& where) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw std::runtime_error(where + ": attribute config is not valid JSON: " + e.what());
  }
  if (!config.is_object()) throw std::runtime_error(where + ": attribute config is not a JSON object");
  return config;
}

// Every dataset of group, checked against the README: floats in the case dtype, is_bool matching the dtype.
std::map<std::string, Tensor> read_group(const io::H5File& f, const std::string& group, const GoldenCase& c,
                                         std::map<std::string, bool>* is_bool = nullptr) {
  std::map<std::string, Tensor> out;
  for (const std::string& name : f.children(group)) {
    const std::string path = group + "/" + name;
    Tensor t = f.read(path);
    if (is_floating(t.dtype()) && t.dtype() != c.dtype)
      throw std::runtime_error(c.where() + ": " + path + " is " + to_string(t.dtype()) + " but the case dtype is " +
                               to_string(c.dtype));
    if (is_bool && f.has_attr(path, "is_bool")) {
      const bool flag = f.attr_int(path, "is_bool") != 0;
      if (flag != (t.dtype() == DType::Bool))
        throw std::runtime_error(c.where() + ": " + path + " is " + to_string(t.dtype()) + " but its is_bool is " +
                                 std::to_string(static_cast<int>(flag)));
      (*is_bool)[name] = flag;
    }
    out.emplace(name, std::move(t));
  }
  return out;
}

// config.architecture.param_order when the file records it (it must list exactly the params), else sorted.
std::vector<std::string> param_order_of(const GoldenCase& c) {
  std::vector<std::string> sorted;
  for (const auto& entry : c.params) sorted.push_back(entry.first);
  const auto arch = c.config.find("architecture");
  if (arch == c.config.end() || !arch->is_object() || !arch->contains("param_order")) return sorted;
  std::vector<std::string> order;
  try {
    order = arch->at("param_order").get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    throw std::runtime_error(c.where() + ": architecture.param_order is not a list of names: " + e.what());
  }
  std::vector<std::string> check = order;
  std::sort(check.begin(), check.end());
  if (check != sorted)
    throw std::runtime_error(c.where() + ": architecture.param_order lists " + join(check, ", ") +
                             " but the params are " + join(sorted, ", "));
  return order;
}

GoldenCase load_case(const io::H5File& f, const std::string& file_name, const std::string& name) {
  GoldenCase c;
  c.file = file_name;
  c.name = name;
  const std::string g = "/" + name;
  c.kind = f.attr_string(g, "kind");
  c.dtype = parse_dtype(f.attr_string(g, "dtype"), c.where());
  c.config = parse_config(f.attr_string(g, "config"), c.where());
  c.params = read_group(f, g + "/params", c);
  c.inputs = read_group(f, g + "/inputs", c, &c.input_is_bool);
  c.outputs = read_group(f, g + "/outputs", c);
  c.grad_inputs = read_group(f, g + "/grads/inputs", c);
  c.grad_params = read_group(f, g + "/grads/params", c);
  if (f.exists(g + "/grad_output")) c.grad_output = f.read(g + "/grad_output");
  if (c.grad_output.defined() && c.grad_output.dtype() != c.dtype)
    throw std::runtime_error(c.where() + ": grad_output is " + to_string(c.grad_output.dtype()) +
                             " but the case dtype is " + to_string(c.dtype));
  c.param_order = param_order_of(c);
  return c;
}

// NaN anywhere fails; an infinite entry must be matched exactly.
double entry_error(double a, double e) {
  if (std::isnan(a) || std::isnan(e)) return kInf;
  if (std::isinf(a) || std::isinf(e)) return a == e ? 0 : kInf;
  return std::abs(a - e);
}

Compare failed(const std::string& what, const std::string& why) {
  return Compare{.ok = false, .max_err = kInf, .scale = 1, .message = what + ": " + why, .what = what};
}

}  // namespace

std::vector<std::string> golden_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw std::runtime_error("golden directory " + dir + " does not exist");
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".h5") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<GoldenCase> load_golden_cases(const std::string& file) {
  const io::H5File f(file, io::H5File::Mode::read);
  const std::string file_name = std::filesystem::path(file).filename().string();
  std::vector<GoldenCase> cases;
  for (const std::string& name : f.children("/")) cases.push_back(load_case(f, file_name, name));
  return cases;
}

void require_known_keys(const nlohmann::json& config, const std::set<std::string>& known, const std::string& where) {
  if (!config.is_object()) throw std::invalid_argument("config in " + where + " is not a JSON object");
  for (auto it = config.begin(); it != config.end(); ++it)
    if (known.count(it.key()) == 0) throw std::invalid_argument("unknown config key '" + it.key() + "' in " + where);
}

Compare compare_to_golden(const std::string& what, const Tensor& actual, const Tensor& expected, DType case_dtype) {
  if (!is_floating(case_dtype))
    throw std::invalid_argument("[compare_to_golden] case_dtype must be float32 or float64; got " +
                                to_string(case_dtype));
  if (!expected.defined()) throw std::invalid_argument("[compare_to_golden] expected is undefined for " + what);
  if (!actual.defined()) return failed(what, "was not computed (undefined tensor)");
  if (actual.shape() != expected.shape())
    return failed(what, "shape " + to_string(actual.shape()) + ", expected " + to_string(expected.shape()));
  if (actual.dtype() != expected.dtype())
    return failed(what, "dtype " + to_string(actual.dtype()) + ", expected " + to_string(expected.dtype()));
  const double rel = case_dtype == DType::Float64 ? 1e-9 : 1e-4;
  const int digits = case_dtype == DType::Float64 ? 17 : 9;
  double scale = 1;
  for (int64_t i = 0; i < expected.numel(); ++i)
    if (std::isfinite(expected.flat(i))) scale = std::max(scale, std::abs(expected.flat(i)));
  double worst = 0;
  int64_t worst_at = -1;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double err = entry_error(actual.flat(i), expected.flat(i));
    if (worst_at < 0 || err > worst) {
      worst = err;
      worst_at = i;
    }
  }
  Compare r{.ok = worst <= rel * scale, .max_err = worst, .scale = scale, .message = "", .what = what};
  const std::string bound = fmt(rel, 1) + " * " + fmt(scale, 4);
  if (r.ok) {
    r.message = what + ": max error " + fmt(worst, 3) + " <= " + bound;
  } else {
    r.message = what + ": max error " + fmt(worst, 3) + " at " + index_string(worst_at, expected.shape()) + " (got " +
                fmt(actual.flat(worst_at), digits) + ", expected " + fmt(expected.flat(worst_at), digits) +
                ") exceeds " + bound;
  }
  return r;
}

std::vector<Compare> compare_case(const GoldenCase& c, const std::map<std::string, Tensor>& outputs,
                                  const std::map<std::string, Tensor>& grad_inputs,
                                  const std::map<std::string, Tensor>& grad_params) {
  std::vector<Compare> out;
  auto add = [&](const std::string& prefix, const std::map<std::string, Tensor>& recorded,
                 const std::map<std::string, Tensor>& computed) {
    for (const auto& [name, expected] : recorded) {
      const auto it = computed.find(name);
      out.push_back(it == computed.end() ? failed(prefix + name, "was not computed")
                                         : compare_to_golden(prefix + name, it->second, expected, c.dtype));
    }
    for (const auto& entry : computed)
      if (recorded.count(entry.first) == 0) out.push_back(failed(prefix + entry.first, "has no recorded value"));
  };
  add("outputs/", c.outputs, outputs);
  add("grads/inputs/", c.grad_inputs, grad_inputs);
  add("grads/params/", c.grad_params, grad_params);
  return out;
}

void GoldenTally::record(const GoldenCase& c, const std::vector<Compare>& comparisons) {
  std::vector<std::string> problems;
  std::set<std::string> compared;
  double& worst = c.dtype == DType::Float32 ? worst_f32_ : worst_f64_;
  for (const Compare& cmp : comparisons) {
    compared.insert(cmp.what);
    if (std::isfinite(cmp.max_err)) worst = std::max(worst, cmp.max_err / cmp.scale);
    if (!cmp.ok) problems.push_back(cmp.message);
  }
  if (comparisons.empty()) problems.push_back("nothing was compared");
  std::vector<std::string> missing;
  auto require = [&](const std::string& prefix, const std::map<std::string, Tensor>& recorded) {
    for (const auto& entry : recorded)
      if (compared.count(prefix + entry.first) == 0) missing.push_back(prefix + entry.first);
  };
  require("outputs/", c.outputs);
  require("grads/inputs/", c.grad_inputs);
  require("grads/params/", c.grad_params);
  if (!missing.empty()) problems.push_back("not compared: " + join(missing, ", "));
  ++total_;
  if (problems.empty()) {
    ++passed_;
  } else {
    failures_.push_back(c.where() + ": " + join(problems, "; "));
  }
}

void GoldenTally::record_failure(const GoldenCase& c, const std::string& reason) {
  ++total_;
  failures_.push_back(c.where() + ": " + reason);
}

std::string GoldenTally::summary_line(const std::string& file) const {
  return "golden " + file + ": " + std::to_string(passed_) + "/" + std::to_string(total_) + " cases passed";
}

std::string GoldenTally::failure_report() const { return join(failures_, "\n"); }

}  // namespace tg::test
